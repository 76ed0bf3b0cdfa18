"""Rate limits and the circuit breaker, on a fake clock."""

import pytest

from alimi_delivery.guard import (
    CLOSED,
    HALF_OPEN,
    OPEN,
    CircuitBreaker,
    ProviderGuard,
    RateLimit,
)
from alimi_delivery.service import RetryPolicy


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_when_the_second_is_unused__then_its_whole_budget_goes_at_once() -> None:
    clock = Clock()
    limit = RateLimit(10, clock=clock)
    assert [limit.wait_time(1) for _ in range(10)] == [0.0] * 10
    assert limit.wait_time(1) == pytest.approx(1.0)


def test_when_a_second_has_passed__then_what_was_taken_in_it_no_longer_counts() -> None:
    clock = Clock()
    limit = RateLimit(100, clock=clock)
    assert limit.wait_time(60) == 0.0
    clock.now += 0.5
    assert limit.wait_time(40) == 0.0
    assert limit.wait_time(50) == pytest.approx(0.5)  # the first 60 leave the window then
    clock.now += 0.5
    assert limit.wait_time(50) == 0.0
    assert limit.wait_time(10) == 0.0  # 40 + 50 + 10: the second is full
    assert limit.wait_time(1) == pytest.approx(0.5)


def test_when_a_request_exceeds_one_seconds_budget__then_it_waits_for_an_empty_second() -> None:
    clock = Clock()
    limit = RateLimit(100, clock=clock)
    assert limit.wait_time(100) == 0.0
    assert limit.wait_time(1000) == pytest.approx(1.0)


def test_when_a_request_exceeds_one_seconds_budget__then_it_counts_for_its_whole_cost() -> None:
    clock = Clock()
    limit = RateLimit(100, clock=clock)
    assert limit.wait_time(250) == 0.0  # an empty second lets it go...
    assert limit.wait_time(1) == pytest.approx(2.5)  # ...and it holds 2.5 s of budget
    clock.now += 2.5
    assert limit.wait_time(1) == 0.0


def _guard(clock: Clock, *, recipients_per_s: float = 0) -> ProviderGuard:
    return ProviderGuard(
        "test-provider",
        requests_per_s=0,
        recipients_per_s=recipients_per_s,
        breaker_failures=1,
        breaker_cooldown_s=10,
        clock=clock,
    )


def test_when_the_recipients_are_limited__then_a_call_carries_one_seconds_budget_at_most() -> None:
    assert _guard(Clock(), recipients_per_s=40).most_per_call == 40
    assert _guard(Clock(), recipients_per_s=0.5).most_per_call == 1
    assert _guard(Clock()).most_per_call is None


def test_when_the_half_open_trial_raises_before_its_answer__then_the_next_call_is_it() -> None:
    clock = Clock()
    guard = _guard(clock)
    guard.observe(call_failed=True, retry_after_s=None)
    clock.now += 10
    with pytest.raises(RuntimeError), guard.calling() as allowed:
        assert allowed and guard.breaker.state == HALF_OPEN
        raise RuntimeError("between allow() and observe()")
    with guard.calling() as allowed:
        assert allowed, "the trial that raised still holds the breaker"
        guard.observe(call_failed=False, retry_after_s=None)
    assert guard.breaker.state == CLOSED


def test_when_the_trial_is_answered__then_leaving_the_block_changes_nothing() -> None:
    clock = Clock()
    guard = _guard(clock)
    guard.observe(call_failed=True, retry_after_s=None)
    clock.now += 10
    with guard.calling() as allowed:
        assert allowed
        guard.observe(call_failed=True, retry_after_s=None)
    assert guard.breaker.state == OPEN and not guard.allow()


def test_when_the_rate_is_zero__then_nothing_is_limited() -> None:
    limit = RateLimit(0, clock=Clock())
    assert all(limit.wait_time(1000) == 0.0 for _ in range(100))


def test_when_the_provider_says_retry_after__then_nothing_goes_until_then() -> None:
    clock = Clock()
    limit = RateLimit(0, clock=clock)
    limit.pause(3)
    assert limit.wait_time(1) == pytest.approx(3)
    clock.now += 3
    assert limit.wait_time(1) == 0.0


async def test_when_acquiring__then_the_caller_waits_out_the_rate() -> None:
    limit = RateLimit(50)
    waited = [await limit.acquire(1) for _ in range(55)]
    assert waited[:50] == [0.0] * 50  # one second's budget at once
    assert waited[50] > 0.5  # the 51st waits for the first to leave the window


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
