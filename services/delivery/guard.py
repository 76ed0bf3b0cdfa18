"""What stands between the delivery service and a provider: a rate limit and a breaker.

* :class:`RateLimit`: at most ``rate`` units in any one second (a sliding
  window, as a provider counts). A provider account has two: requests and
  recipients. A 429 or "volume exceeded" with ``Retry-After`` pauses the limit
  for that long, so the limit Alimi keeps is never above what the provider
  allows. A request bigger than one second's budget goes alone and counts for
  as many seconds as it needs; delivery never makes one (it splits a batch
  into calls of at most :attr:`ProviderGuard.most_per_call` people). The limit
  is per process: with ``n`` replicas, give each ``1/n`` of the account's
  limit (see the README).
* :class:`CircuitBreaker`: after ``failures`` whole-call failures in a row
  (5xx, timeouts, network errors) it opens and refuses calls for ``cooldown_s``;
  then one trial call is let through (half-open): success closes it, failure
  opens it again, and a trial that ends without an answer (an exception, a
  cancelled task) lets the next call be the trial (:meth:`ProviderGuard.calling`).
  While it is open, batches go to the retry queue instead of hammering a
  provider that is down.

Both are pure logic over an injectable clock; :class:`ProviderGuard` joins
them for one provider and exports their state as metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable, Iterator

from prometheus_client import Counter, Gauge

Clock = Callable[[], float]

BREAKER_STATE = Gauge(
    "alimi_provider_breaker_state",
    "Circuit breaker per provider: 0 closed, 1 half-open, 2 open",
    ["provider"],
)
BREAKER_OPENED = Counter(
    "alimi_provider_breaker_opened_total", "Times a provider's breaker opened", ["provider"]
)
THROTTLED = Counter(
    "alimi_provider_throttled_seconds_total",
    "Time spent waiting for the rate limit, by provider",
    ["provider"],
)
PROVIDER_PAUSES = Counter(
    "alimi_provider_retry_after_total",
    "Retry-After answers (429, volume exceeded) that paused sending, by provider",
    ["provider"],
)


class RateLimit:
    """At most ``capacity`` units in any one second: a sliding window, as providers count.

    (A token bucket of the same rate lets a full bucket and a second's refill through
    within one second: twice the limit at the provider.)
    """

    def __init__(self, rate: float, burst: float | None = None, clock: Clock = time.monotonic):
        """``rate`` units per second (0: unlimited), ``burst`` in one second at most
        (default: ``rate``)."""
        self.rate = rate
        self.capacity = max(burst if burst is not None else rate, 1.0)
        self.clock = clock
        self.taken: deque[tuple[float, float]] = deque()  # (until, units) still counted
        self.paused_until = 0.0
        self._lock = asyncio.Lock()

    def wait_time(self, amount: float) -> float:
        """Seconds until ``amount`` units may be taken (0: now); takes them if so."""
        now = self.clock()
        if now < self.paused_until:
            return self.paused_until - now
        if self.rate <= 0:
            return 0.0
        while self.taken and self.taken[0][0] <= now:
            self.taken.popleft()
        in_window = sum(units for _, units in self.taken)
        # More than one second's budget goes alone, and counts for as many seconds.
        needed = min(amount, self.capacity)
        if in_window + needed <= self.capacity:
            until = now + 1.0 + max(amount - self.capacity, 0.0) / self.rate
            self.taken.append((until, amount))
            return 0.0
        freed = 0.0
        for until, units in sorted(self.taken):
            freed += units
            if in_window - freed + needed <= self.capacity:
                return until - now
        return 0.0  # not reached: freeing every unit always makes room

    async def acquire(self, amount: float = 1.0) -> float:
        """Wait until ``amount`` units are available; return how long it waited."""
        waited = 0.0
        async with self._lock:  # first come, first served
            while (delay := self.wait_time(amount)) > 0:
                await asyncio.sleep(delay)
                waited += delay
        return waited

    def pause(self, seconds: float) -> None:
        """The provider said "not before ``seconds``": take nothing until then."""
        self.paused_until = max(self.paused_until, self.clock() + seconds)


CLOSED, HALF_OPEN, OPEN = 0, 1, 2


class CircuitBreaker:
    def __init__(self, failures: int, cooldown_s: float, clock: Clock = time.monotonic) -> None:
        self.threshold = failures
        self.cooldown_s = cooldown_s
        self.clock = clock
        self.state = CLOSED
        self.consecutive = 0
        self.opened_at = 0.0
        self.trial_in_flight = False

    def allow(self) -> bool:
        """May a call go out now? In half-open, only one trial at a time."""
        if self.state == OPEN:
            if self.clock() - self.opened_at < self.cooldown_s:
                return False
            self.state = HALF_OPEN
            self.trial_in_flight = False
        if self.state == HALF_OPEN:
            if self.trial_in_flight:
                return False
            self.trial_in_flight = True
        return True

    def succeeded(self) -> None:
        self.state = CLOSED
        self.consecutive = 0
        self.trial_in_flight = False

    def abandoned(self) -> None:
        """A call let through ended without an answer: if it was the half-open trial,
        the next call may be the trial instead (the breaker stays half-open)."""
        if self.state == HALF_OPEN:
            self.trial_in_flight = False

    def failed(self) -> bool:
        """Count a failed call; True if this opened the breaker."""
        self.consecutive += 1
        self.trial_in_flight = False
        if self.state == HALF_OPEN or self.consecutive >= self.threshold:
            was_open = self.state == OPEN
            self.state = OPEN
            self.opened_at = self.clock()
            return not was_open
        return False


class ProviderGuard:
    """Rate limits and a breaker for one provider account, with their metrics."""

    def __init__(
        self,
        provider: str,
        *,
        requests_per_s: float,
        recipients_per_s: float,
        breaker_failures: int,
        breaker_cooldown_s: float,
        clock: Clock = time.monotonic,
    ) -> None:
        self.provider = provider
        self.requests = RateLimit(requests_per_s, clock=clock)
        self.recipients = RateLimit(recipients_per_s, clock=clock)
        self.breaker = CircuitBreaker(breaker_failures, breaker_cooldown_s, clock=clock)
        BREAKER_STATE.labels(provider).set(CLOSED)
        BREAKER_OPENED.labels(provider)
        THROTTLED.labels(provider)
        PROVIDER_PAUSES.labels(provider)

    def allow(self) -> bool:
        allowed = self.breaker.allow()
        BREAKER_STATE.labels(self.provider).set(self.breaker.state)
        return allowed

    @contextlib.contextmanager
    def calling(self) -> Iterator[bool]:
        """``with guard.calling() as allowed:`` :meth:`allow`, and whatever the block
        raises, a half-open trial it let through is over when the block is."""
        allowed = self.allow()
        try:
            yield allowed
        finally:
            if allowed:
                self.breaker.abandoned()  # a no-op once observe() has had the answer

    @property
    def most_per_call(self) -> int | None:
        """The most recipients one call may carry: one second's budget (None: no limit)."""
        if self.recipients.rate <= 0:
            return None
        return max(1, int(self.recipients.capacity))

    async def throttle(self, recipients: int) -> None:
        waited = await self.requests.acquire(1)
        waited += await self.recipients.acquire(recipients)
        if waited:
            THROTTLED.labels(self.provider).inc(waited)

    def observe(self, *, call_failed: bool, retry_after_s: float | None) -> None:
        """After a call: feed the breaker, and honour the provider's ``Retry-After``."""
        if call_failed:
            if self.breaker.failed():
                BREAKER_OPENED.labels(self.provider).inc()
        else:
            self.breaker.succeeded()
        BREAKER_STATE.labels(self.provider).set(self.breaker.state)
        if retry_after_s is not None:
            PROVIDER_PAUSES.labels(self.provider).inc()
            self.requests.pause(retry_after_s)
            self.recipients.pause(retry_after_s)
