"""Fixtures of the chaos tests: a whole stack per test, started with the test's settings.

Each test builds its stack with :func:`start_stack` (settings as environment
variables, which every process gets), in the test's own namespace and
database; the processes are stopped and the namespace's queues deleted
afterwards, whatever the test did to them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import aiohttp
import harness
import pytest
from harness import BASE_ENV, StartStack

from alimi.store import Store
from alimi_devstack import Stack, StackError
from support import delete_namespace

BASELINE_PREFIX = "test_without_faults["
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def _report(config: Any) -> Path:
    """Where this run's table goes: the cluster suite (``-m cluster``, its own step in
    CI) keeps its own, so it does not overwrite the main suite's."""
    cluster = "cluster" in (config.getoption("markexpr") or "").replace("not cluster", "")
    return ARTIFACTS / ("chaos-times-cluster.md" if cluster else "chaos-times.md")


@pytest.fixture(autouse=True)
def _name_the_test(request: pytest.FixtureRequest) -> None:
    """Completion times are recorded under the test's name."""
    harness.current_test[0] = request.node.name


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Each fault scenario's time to completion against the same notice without faults
    (``test_baselines.py``), printed and kept in ``test-artifacts/`` (see :func:`_report`)."""
    times = harness.COMPLETION_TIMES
    rows = []
    for name, faulted in sorted(times.items()):
        if name.startswith(BASELINE_PREFIX):
            continue
        clean = times.get(f"{BASELINE_PREFIX}{name.removeprefix('test_')}]")
        ratio = (
            f"{faulted['seconds'] / clean['seconds']:.1f}x" if clean and clean["seconds"] else "-"
        )
        rows.append(
            f"| {name.removeprefix('test_')} | {faulted['people']:,} | {faulted['seconds']} s "
            f"| {str(clean['seconds']) + ' s' if clean else '-'} | {ratio} |"
        )
    if not rows:
        return
    lines = [
        "| scenario | people | approval to completed, with the fault | without faults | ratio |",
        "|---|---:|---:|---:|---:|",
        *rows,
    ]
    report = _report(terminalreporter.config)
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text("\n".join(lines) + "\n")
    terminalreporter.write_sep("-", "chaos: time to completion, with and without the fault")
    for line in lines:
        terminalreporter.write_line(line)


@pytest.fixture
def start_stack(
    tmp_path: Path, mongo_url: str, amqp_url: str, namespace: str, store: Store
) -> Iterator[StartStack]:
    """``start_stack(env, own_mongo=False, mongo_app_name=None, replicas=None)`` -> a
    running Stack.

    It asks for ``store`` so that the test's database is dropped only after every
    process has stopped: dropped under live writers, the development server's drop
    could run for many minutes.

    ``own_mongo``: the stack starts its own SecantusDB (it can then be
    restarted). ``mongo_app_name``: the services connect with this
    ``appName``, so a fail point can be aimed at them alone. ``replicas``: more
    processes of a service, as ``{"segmenter": 2}`` (``Stack.replicas``).
    """
    started: list[Stack] = []

    def start(
        env: dict[str, str] | None = None,
        *,
        own_mongo: bool = False,
        mongo_app_name: str | None = None,
        replicas: dict[str, int] | None = None,
    ) -> Stack:
        stack = Stack(
            workdir=tmp_path / "stack",
            namespace=namespace,
            amqp_url=amqp_url,
            mongo_url=None if own_mongo else mongo_url,
            mongo_db=namespace,
            extra_env={**BASE_ENV, **(env or {})},
            replicas=dict(replicas or {}),
        )
        started.append(stack)
        try:
            stack.check_rabbitmq()
            url = stack.start_mongo() if own_mongo else mongo_url
            if mongo_app_name:
                separator = "&" if "?" in url else "?"
                stack.mongo_url = f"{url}{separator}appName={mongo_app_name}"
            # start_all() runs its own event loop (to seed the API keys): off this one.
            with ThreadPoolExecutor(1) as pool:
                pool.submit(stack.start_all).result()
        except StackError as exc:
            pytest.fail(f"stack did not start: {exc}; logs in {stack.workdir}", pytrace=False)
        return stack

    yield start
    for stack in started:
        stack.stop_all()
    asyncio.run(delete_namespace(amqp_url, namespace))


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session
