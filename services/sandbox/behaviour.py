"""How the simulated providers misbehave: latency, injected failures and per-number outcomes."""

from __future__ import annotations

import asyncio
import dataclasses
import math
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .suffixes import SuffixRanges

NO_SUFFIXES = SuffixRanges()
SUFFIX_FIELDS = (
    "sms_undelivered_suffixes",
    "kakao_not_user_suffixes",
    "kakao_uncertain_suffixes",
    "kakao_undelivered_suffixes",
)


class InvalidSetting(ValueError):
    """A behaviour setting is out of range; ``field`` names the offending setting."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field} {reason}")
        self.field = field
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Behaviour:
    """Latency, error-rate and outcome settings; validated on construction.

    The ``*_suffixes`` fields also accept their text form (``"7000-9999"``), which is
    what ``PUT /_sandbox/config`` carries.
    """

    latency_ms: float = 20.0
    latency_jitter_ms: float = 0.0
    error_rate: float = 0.0
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
        if not _is_number(self.error_rate) or not 0.0 <= self.error_rate <= 1.0:
            raise InvalidSetting("error_rate", "must be a number between 0.0 and 1.0")
        for field in ("latency_ms", "latency_jitter_ms", "error_rate"):
            object.__setattr__(self, field, float(getattr(self, field)))  # 5 -> 5.0
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
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
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


class Simulation:
    """Applies the current Behaviour using one (optionally seeded) random generator."""

    def __init__(self, behaviour: Behaviour, seed: int | None = None) -> None:
        self.behaviour = behaviour
        self._rng = random.Random(seed)

    async def pause(self) -> None:
        """Sleep for the configured latency plus uniform jitter in [0, jitter]."""
        behaviour = self.behaviour
        delay_ms = behaviour.latency_ms
        if behaviour.latency_jitter_ms:
            delay_ms += self._rng.uniform(0.0, behaviour.latency_jitter_ms)
        if delay_ms > 0:
            await asyncio.sleep(delay_ms / 1000)

    def should_fail(self) -> bool:
        """Decide whether this call is answered with a simulated internal error."""
        rate = self.behaviour.error_rate
        if rate <= 0.0:
            return False
        return rate >= 1.0 or self._rng.random() < rate
