"""Rate limits and the circuit breaker, on a fake clock."""

import pytest

from alimi_delivery.guard import CLOSED, HALF_OPEN, OPEN, CircuitBreaker, TokenBucket
from alimi_delivery.service import RetryPolicy


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_when_the_bucket_is_full__then_a_burst_up_to_its_size_goes_at_once() -> None:
    clock = Clock()
    bucket = TokenBucket(10, clock=clock)
    assert [bucket.wait_time(1) for _ in range(10)] == [0.0] * 10
    assert bucket.wait_time(1) == pytest.approx(0.1)


def test_when_time_passes__then_tokens_come_back_at_the_rate() -> None:
    clock = Clock()
    bucket = TokenBucket(100, clock=clock)
    assert bucket.wait_time(100) == 0.0
    clock.now += 0.5
    assert bucket.wait_time(50) == 0.0
    assert bucket.wait_time(10) == pytest.approx(0.1)


def test_when_a_request_exceeds_the_bucket__then_it_waits_for_a_full_bucket() -> None:
    clock = Clock()
    bucket = TokenBucket(100, clock=clock)
    assert bucket.wait_time(100) == 0.0
    assert bucket.wait_time(1000) == pytest.approx(1.0)


def test_when_the_rate_is_zero__then_nothing_is_limited() -> None:
    bucket = TokenBucket(0, clock=Clock())
    assert all(bucket.wait_time(1000) == 0.0 for _ in range(100))


def test_when_the_provider_says_retry_after__then_nothing_goes_until_then() -> None:
    clock = Clock()
    bucket = TokenBucket(0, clock=clock)
    bucket.pause(3)
    assert bucket.wait_time(1) == pytest.approx(3)
    clock.now += 3
    assert bucket.wait_time(1) == 0.0


async def test_when_acquiring__then_the_caller_waits_out_the_rate() -> None:
    bucket = TokenBucket(50)
    waited = [await bucket.acquire(1) for _ in range(55)]
    assert sum(waited) == pytest.approx(0.1, abs=0.05)


def test_when_failures_reach_the_threshold__then_the_breaker_opens_for_the_cooldown() -> None:
    clock = Clock()
    breaker = CircuitBreaker(3, 30, clock=clock)
    assert breaker.allow()
    assert not breaker.failed() and not breaker.failed()
    assert breaker.failed()  # the third in a row opens it
    assert breaker.state == OPEN and not breaker.allow()
    clock.now += 29.9
    assert not breaker.allow()


def test_when_the_cooldown_is_over__then_one_trial_call_is_let_through() -> None:
    clock = Clock()
    breaker = CircuitBreaker(1, 10, clock=clock)
    breaker.failed()
    clock.now += 10
    assert breaker.allow() and breaker.state == HALF_OPEN
    assert not breaker.allow()  # only one trial at a time
    breaker.succeeded()
    assert breaker.state == CLOSED and breaker.allow()


def test_when_the_trial_fails__then_the_breaker_opens_again() -> None:
    clock = Clock()
    breaker = CircuitBreaker(5, 10, clock=clock)
    for _ in range(5):
        breaker.failed()
    clock.now += 10
    assert breaker.allow()
    assert breaker.failed()  # reopened: counts as a new opening
    assert breaker.state == OPEN and not breaker.allow()


def test_when_a_call_succeeds__then_the_failure_count_starts_over() -> None:
    breaker = CircuitBreaker(2, 10, clock=Clock())
    breaker.failed()
    breaker.succeeded()
    assert not breaker.failed()
    assert breaker.state == CLOSED


def test_when_a_retry_is_scheduled__then_its_delay_is_the_steps_within_the_jitter() -> None:
    policy = RetryPolicy((5.0, 30.0, 300.0), jitter=0.2)
    delays = [policy.delay(2) for _ in range(200)]
    assert all(24.0 <= d <= 36.0 for d in delays)
    assert len(set(delays)) > 1


def test_when_the_provider_asked_for_longer__then_retry_after_wins() -> None:
    assert RetryPolicy((5.0, 30.0, 300.0), jitter=0.0).delay(1, retry_after_s=12) == 12


@pytest.mark.parametrize(("lease", "step"), [(1, 1), (5, 1), (6, 2), (60, 3), (900, 3)])
def test_when_people_wait_out_a_claim__then_the_first_step_outlasting_it_is_chosen(
    lease: float, step: int
) -> None:
    assert RetryPolicy((5.0, 30.0, 300.0)).step_outlasting(lease) == step
