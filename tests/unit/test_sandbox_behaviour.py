"""Latency and error-rate settings of the sandbox."""

import math
import time
from typing import Any

import pytest

from alimi_sandbox.behaviour import Behaviour, InvalidSetting, Simulation


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("latency_ms", -1),
        ("latency_ms", math.inf),
        ("latency_ms", "20"),
        ("latency_jitter_ms", -0.5),
        ("latency_jitter_ms", True),
        ("error_rate", 1.5),
        ("error_rate", -0.1),
        ("error_rate", math.nan),
        ("error_rate", None),
    ],
)
def test_when_a_setting_is_out_of_range__then_the_error_names_it(field: str, value: Any) -> None:
    with pytest.raises(InvalidSetting) as caught:
        Behaviour(**{field: value})
    assert caught.value.field == field


def test_when_updated_with_an_unknown_name__then_the_error_names_it() -> None:
    with pytest.raises(InvalidSetting) as caught:
        Behaviour().updated({"latency": 5})
    assert caught.value.field == "latency"


def test_when_updated__then_only_the_given_settings_change() -> None:
    behaviour = Behaviour(latency_ms=5, error_rate=0.5).updated({"error_rate": 0})
    assert behaviour == Behaviour(latency_ms=5, error_rate=0)


@pytest.mark.parametrize(("rate", "expected"), [(0.0, False), (1.0, True)])
def test_when_error_rate_is_0_or_1__then_failure_is_certain(rate: float, expected: bool) -> None:
    simulation = Simulation(Behaviour(error_rate=rate))
    assert {simulation.should_fail() for _ in range(100)} == {expected}


def test_when_seeded__then_failures_repeat_exactly() -> None:
    def failures(seed: int) -> list[bool]:
        simulation = Simulation(Behaviour(error_rate=0.3), seed=seed)
        return [simulation.should_fail() for _ in range(200)]

    assert failures(7) == failures(7)
    assert 20 < sum(failures(7)) < 100


async def test_when_latency_is_set__then_pause_waits_at_least_that_long() -> None:
    simulation = Simulation(Behaviour(latency_ms=30, latency_jitter_ms=10), seed=1)
    started = time.monotonic()
    await simulation.pause()
    assert time.monotonic() - started >= 0.03
