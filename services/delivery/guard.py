"""What stands between the delivery service and a provider: a rate limit and a breaker.

* :class:`TokenBucket`: at most ``rate`` units a second on average, bursts up
  to ``burst``. A provider account has two: requests and recipients. A 429 or
  "volume exceeded" with ``Retry-After`` pauses the bucket for that long, so
  the limit Alimi keeps is never above what the provider allows. The limit is
  per process: with ``n`` replicas, give each ``1/n`` of the account's limit
  (see the README).
* :class:`CircuitBreaker`: after ``failures`` whole-call failures in a row
  (5xx, timeouts, network errors) it opens and refuses calls for ``cooldown_s``;
  then one trial call is let through (half-open): success closes it, failure
  opens it again. While it is open, batches go to the retry queue instead of
  hammering a provider that is down.

Both are pure logic over an injectable clock; :class:`ProviderGuard` joins
them for one provider and exports their state as metrics.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

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


class TokenBucket:
    def __init__(self, rate: float, burst: float | None = None, clock: Clock = time.monotonic):
        """``rate`` units per second (0: unlimited), ``burst`` at most (default: one second's)."""
        self.rate = rate
        self.capacity = max(burst if burst is not None else rate, 1.0)
        self.clock = clock
        self.tokens = self.capacity
        self.updated = clock()
        self.paused_until = 0.0
        self._lock = asyncio.Lock()

    def wait_time(self, amount: float) -> float:
        """Seconds until ``amount`` units may be taken (0: now); takes them if so."""
        now = self.clock()
        if now < self.paused_until:
            return self.paused_until - now
        if self.rate <= 0:
            return 0.0
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        # A request bigger than the bucket waits for a full bucket and takes it all.
        needed = min(amount, self.capacity)
        if self.tokens >= needed:
            self.tokens -= needed
            return 0.0
        return (needed - self.tokens) / self.rate

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
        self.tokens = 0.0


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
        self.requests = TokenBucket(requests_per_s, clock=clock)
        self.recipients = TokenBucket(recipients_per_s, clock=clock)
        self.breaker = CircuitBreaker(breaker_failures, breaker_cooldown_s, clock=clock)
        BREAKER_STATE.labels(provider).set(CLOSED)
        BREAKER_OPENED.labels(provider)
        THROTTLED.labels(provider)
        PROVIDER_PAUSES.labels(provider)

    def allow(self) -> bool:
        allowed = self.breaker.allow()
        BREAKER_STATE.labels(self.provider).set(self.breaker.state)
        return allowed

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
