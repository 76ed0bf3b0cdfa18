"""The chaos scenarios' notices without their faults: what each fault costs in time.

Each case runs the same notice as a fault scenario (the same people, settings and
replicas, on the tests' shared database server) with nothing going wrong, and
checks everyone is told once. The suite's
summary (``conftest.pytest_terminal_summary``) then sets each scenario's approval to
completion time against its case here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from harness import Run, StartStack, load_people
from test_broker_faults import CONNECTIONS_CLOSED
from test_mongo_faults import RESTARTED, STEADY_PROVIDER
from test_process_crashes import SEGMENTER_KILLED, SLOW_PROVIDER
from test_provider_faults import DOWN_FOR_GOOD, STORM
from test_scale_out import SCALE_OUT, SCALE_OUT_REPLICAS

from alimi.store import Store

pytestmark = pytest.mark.chaos


@dataclass(frozen=True)
class Case:
    people: int
    env: dict[str, str]
    replicas: dict[str, int] = field(default_factory=dict)


# The scenario's name (its test's, without ``test_``) -> its notice.
CASES = {
    "when_the_broker_closes_every_connection_mid_notice__then_everyone_is_told_once": Case(
        1000, CONNECTIONS_CLOSED
    ),
    "when_mongodb_refuses_writes_mid_notice__then_nothing_is_lost_or_doubled": Case(
        400, STEADY_PROVIDER
    ),
    "when_mongodb_restarts_mid_notice__then_nothing_is_lost_or_doubled": Case(500, RESTARTED),
    "when_a_delivery_worker_is_killed_mid_notice__then_everyone_is_told_exactly_once": Case(
        5000, SLOW_PROVIDER
    ),
    "when_a_delivery_worker_is_stopped_mid_notice__then_it_drains_and_exits_cleanly": Case(
        600, {**SLOW_PROVIDER, "ALIMI_DRAIN_GRACE_S": "10"}
    ),
    "when_the_segmenter_is_killed_halfway__then_it_resumes_and_everyone_is_told_once": Case(
        20_000, SEGMENTER_KILLED
    ),
    "when_the_provider_storms__then_retries_and_the_breaker_get_everyone_told_once": Case(
        300, STORM
    ),
    "when_the_provider_is_down_for_good__then_dead_letters_replayed_later_reach_everyone": Case(
        200, DOWN_FOR_GOOD
    ),
    "when_a_segmenter_dies_mid_partition_and_the_approval_comes_again__then_everyone_is_told_once": Case(  # noqa: E501
        20_000, SCALE_OUT, SCALE_OUT_REPLICAS
    ),
}


@pytest.mark.timeout(600)
@pytest.mark.parametrize("scenario", list(CASES))
async def test_without_faults(
    scenario: str, start_stack: StartStack, store: Store, http: aiohttp.ClientSession
) -> None:
    case = CASES[scenario]
    run = Run(start_stack(case.env, replicas=case.replicas), store, http)
    people = await load_people(store, case.people)
    notice = await run.post_notice()
    view: dict[str, Any] = await run.wait_completed(notice, within_s=540)
    await run.assert_each_notified_once(notice, people)
    assert view["notices"][0]["people"] == case.people


def test_when_a_scenario_is_renamed__then_its_case_here_follows() -> None:
    """Every case names a chaos test that exists, or its time would have nothing to
    compare with."""
    import test_broker_faults
    import test_mongo_faults
    import test_process_crashes
    import test_provider_faults
    import test_scale_out

    modules = (
        test_broker_faults,
        test_mongo_faults,
        test_process_crashes,
        test_provider_faults,
        test_scale_out,
    )
    tests = {name.removeprefix("test_") for m in modules for name in dir(m)}
    assert set(CASES) <= tests, set(CASES) - tests
