"""How the simulated providers misbehave: latency, injected faults and per-number outcomes."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
import random
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from .suffixes import SuffixRanges

NO_SUFFIXES = SuffixRanges()
SUFFIX_FIELDS = (
    "sms_undelivered_suffixes",
    "kakao_not_user_suffixes",
    "kakao_uncertain_suffixes",
    "kakao_undelivered_suffixes",
)
RATE_FIELDS = ("error_rate", "rate_limit_rate", "timeout_rate")
MAX_RETRY_AFTER_S = 3600
MAX_HANG_MS = 600_000


class InvalidSetting(ValueError):
    """A behaviour setting is out of range; ``field`` names the offending setting."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field} {reason}")
        self.field = field
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Behaviour:
    """Latency, injected-fault and outcome settings; validated on construction.

    The ``*_suffixes`` fields also accept their text form (``"7000-9999"``), which is
    what ``PUT /_sandbox/config`` carries.
    """

    latency_ms: float = 20.0
    latency_jitter_ms: float = 0.0
    error_rate: float = 0.0  # share of send calls answered HTTP 500
    rate_limit_rate: float = 0.0  # share answered HTTP 429 with Retry-After: retry_after_s
    retry_after_s: int = 1
    timeout_rate: float = 0.0  # share accepted, but answered only after hang_ms
    hang_ms: float = 30_000.0
    sms_undelivered_suffixes: SuffixRanges = NO_SUFFIXES
    kakao_not_user_suffixes: SuffixRanges = NO_SUFFIXES
    kakao_uncertain_suffixes: SuffixRanges = NO_SUFFIXES
    kakao_undelivered_suffixes: SuffixRanges = NO_SUFFIXES
    kakao_volume_limit: int = 0  # Kakao requests per second; 0 = unlimited

    def __post_init__(self) -> None:
        for field in ("latency_ms", "latency_jitter_ms"):
            value = getattr(self, field)
            if not _is_number(value) or not math.isfinite(value) or value < 0:
                raise InvalidSetting(field, "must be a finite number >= 0")
        for field in RATE_FIELDS:
            value = getattr(self, field)
            if not _is_number(value) or not 0.0 <= value <= 1.0:  # also rejects nan
                raise InvalidSetting(field, "must be a number between 0.0 and 1.0")
        if not _is_number(self.hang_ms) or not 0 <= self.hang_ms <= MAX_HANG_MS:
            raise InvalidSetting("hang_ms", f"must be a number between 0 and {MAX_HANG_MS}")
        for field in ("latency_ms", "latency_jitter_ms", "hang_ms", *RATE_FIELDS):
            object.__setattr__(self, field, float(getattr(self, field)))  # 5 -> 5.0
        retry_after = self.retry_after_s
        if not _is_integer(retry_after) or not 0 <= retry_after <= MAX_RETRY_AFTER_S:
            raise InvalidSetting(
                "retry_after_s", f"must be an integer between 0 and {MAX_RETRY_AFTER_S}"
            )
        for field in SUFFIX_FIELDS:
            suffixes: object = getattr(self, field)
            if isinstance(suffixes, str):
                try:
                    suffixes = SuffixRanges.parse(suffixes)
                except ValueError as error:
                    raise InvalidSetting(field, str(error)) from None
                object.__setattr__(self, field, suffixes)
            elif not isinstance(suffixes, SuffixRanges):
                raise InvalidSetting(field, 'must be a string such as "7000-9999" or ""')
        limit = self.kakao_volume_limit
        if not _is_integer(limit) or limit < 0:
            raise InvalidSetting("kakao_volume_limit", "must be an integer >= 0")

    def updated(self, changes: Mapping[str, Any]) -> Behaviour:
        """Return a copy with ``changes`` applied; unknown names raise InvalidSetting."""
        known = {f.name for f in dataclasses.fields(self)}
        for name in changes:
            if name not in known:
                raise InvalidSetting(name, "is not a known setting")
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> dict[str, Any]:
        return {
            f.name: str(value)
            if isinstance(value := getattr(self, f.name), SuffixRanges)
            else value
            for f in dataclasses.fields(self)
        }


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_integer(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class Fault(Enum):
    """What an injected fault does to one send call; see ``Simulation.decide``."""

    NONE = "none"
    FAIL = "fail"  # HTTP 500, nothing recorded
    RATE_LIMIT = "rate_limit"  # HTTP 429 with Retry-After, nothing recorded
    HANG = "hang"  # accepted and recorded, but answered only after hang_ms


class Simulation:
    """Applies the current Behaviour using one (optionally seeded) random generator.

    Every random choice (jitter, faults) comes from the one generator, so a run with
    ``SANDBOX_SEED`` repeats its choices as long as the calls arrive in the same order.
    """

    def __init__(self, behaviour: Behaviour, seed: int | None = None) -> None:
        self.behaviour = behaviour
        self._rng = random.Random(seed)
        self._stopping = asyncio.Event()

    async def pause(self) -> None:
        """Sleep for the configured latency plus uniform jitter in [0, jitter]."""
        behaviour = self.behaviour
        delay_ms = behaviour.latency_ms
        if behaviour.latency_jitter_ms:
            delay_ms += self._rng.uniform(0.0, behaviour.latency_jitter_ms)
        if delay_ms > 0:
            await asyncio.sleep(delay_ms / 1000)

    def decide(self) -> Fault:
        """The injected fault of one send call, decided in a fixed order.

        ``error_rate`` first (HTTP 500), then ``rate_limit_rate`` (HTTP 429) for the calls
        that did not fail, then ``timeout_rate`` (accept, answer after ``hang_ms``) for the
        rest. A rate of 0 or 1 decides without drawing a random number.
        """
        behaviour = self.behaviour
        if self._chance(behaviour.error_rate):
            return Fault.FAIL
        if self._chance(behaviour.rate_limit_rate):
            return Fault.RATE_LIMIT
        if self._chance(behaviour.timeout_rate):
            return Fault.HANG
        return Fault.NONE

    def _chance(self, rate: float) -> bool:
        if rate <= 0.0:
            return False
        return rate >= 1.0 or self._rng.random() < rate

    async def hang(self) -> None:
        """Wait ``hang_ms``, or less if the sandbox starts shutting down meanwhile."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), self.behaviour.hang_ms / 1000)

    def stop_hanging(self) -> None:
        """End every current and future hang at once; the app calls this on shutdown."""
        self._stopping.set()
