"""Latency and injected-fault settings of the sandbox, and the decisions they lead to."""

import asyncio
import math
import time
from collections import Counter
from typing import Any

import pytest

from alimi_sandbox.behaviour import Behaviour, Fault, InvalidSetting, Simulation


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
        ("rate_limit_rate", 1.01),
        ("rate_limit_rate", "0.5"),
        ("timeout_rate", -0.5),
        ("timeout_rate", math.nan),
        ("retry_after_s", -1),
        ("retry_after_s", 3601),
        ("retry_after_s", 1.5),
        ("retry_after_s", True),
        ("hang_ms", -1),
        ("hang_ms", 600_001),
        ("hang_ms", math.inf),
        ("hang_ms", None),
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


def test_when_fault_settings_are_not_given__then_no_fault_is_injected() -> None:
    defaults = Behaviour()
    assert (defaults.error_rate, defaults.rate_limit_rate, defaults.timeout_rate) == (0, 0, 0)
    assert (defaults.retry_after_s, defaults.hang_ms) == (1, 30_000.0)


def test_when_fault_settings_are_at_their_limits__then_they_are_accepted() -> None:
    behaviour = Behaviour(rate_limit_rate=1, timeout_rate=0, retry_after_s=3600, hang_ms=600_000)
    assert (behaviour.rate_limit_rate, behaviour.timeout_rate) == (1.0, 0.0)
    assert (behaviour.retry_after_s, behaviour.hang_ms) == (3600, 600_000.0)
    assert Behaviour(retry_after_s=0, hang_ms=0).as_dict()["hang_ms"] == 0


@pytest.mark.parametrize(
    ("settings", "fault"),
    [
        ({}, Fault.NONE),
        ({"error_rate": 1.0}, Fault.FAIL),
        ({"rate_limit_rate": 1.0}, Fault.RATE_LIMIT),
        ({"timeout_rate": 1.0}, Fault.HANG),
        ({"error_rate": 1.0, "rate_limit_rate": 1.0, "timeout_rate": 1.0}, Fault.FAIL),
        ({"rate_limit_rate": 1.0, "timeout_rate": 1.0}, Fault.RATE_LIMIT),
    ],
)
def test_when_rates_are_0_or_1__then_the_first_certain_fault_in_order_wins(
    settings: dict[str, float], fault: Fault
) -> None:
    simulation = Simulation(Behaviour(**settings))
    assert {simulation.decide() for _ in range(100)} == {fault}


def test_when_seeded__then_decisions_repeat_exactly() -> None:
    def decisions(seed: int) -> list[Fault]:
        behaviour = Behaviour(error_rate=0.2, rate_limit_rate=0.25, timeout_rate=0.5)
        simulation = Simulation(behaviour, seed=seed)
        return [simulation.decide() for _ in range(400)]

    assert decisions(7) == decisions(7)
    assert decisions(7) != decisions(8)


def test_when_rates_are_combined__then_each_applies_to_the_calls_the_previous_let_through() -> None:
    simulation = Simulation(Behaviour(error_rate=0.5, rate_limit_rate=0.5), seed=3)
    counts = Counter(simulation.decide() for _ in range(4000))
    # half fail; half of the other half are rate-limited; the rest go through
    assert 1800 < counts[Fault.FAIL] < 2200
    assert 800 < counts[Fault.RATE_LIMIT] < 1200
    assert 800 < counts[Fault.NONE] < 1200
    assert counts[Fault.HANG] == 0


async def test_when_a_call_hangs__then_it_waits_hang_ms() -> None:
    simulation = Simulation(Behaviour(hang_ms=50))
    started = time.monotonic()
    await simulation.hang()
    assert time.monotonic() - started >= 0.05


async def test_when_the_sandbox_stops__then_a_long_hang_ends_at_once() -> None:
    simulation = Simulation(Behaviour(hang_ms=600_000))
    hanging = asyncio.create_task(simulation.hang())
    await asyncio.sleep(0.01)
    assert not hanging.done()

    simulation.stop_hanging()

    await asyncio.wait_for(hanging, timeout=1)
    await asyncio.wait_for(simulation.hang(), timeout=1)  # later hangs end at once too


async def test_when_latency_is_set__then_pause_waits_at_least_that_long() -> None:
    simulation = Simulation(Behaviour(latency_ms=30, latency_jitter_ms=10), seed=1)
    started = time.monotonic()
    await simulation.pause()
    assert time.monotonic() - started >= 0.03
