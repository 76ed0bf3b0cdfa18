"""Shared fixtures: the real MongoDB-wire server and the real RabbitMQ.

SecantusDB is started once per test session as its own process on a free
port. Each test gets its own namespace (queue/exchange prefix and database),
removed afterwards, so tests never see each other's messages or documents.
RabbitMQ must be running: a test that needs it fails loudly if it is not.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from alimi.bus import Bus
from alimi.store import Store
from alimi_devstack import DEFAULT_AMQP_URL, Stack, StackError, rabbitmq_answers
from support import TEST_MONGO_TIMEOUT_MS, delete_namespace, remove_database

AMQP_URL = os.environ.get("AMQP_URL", DEFAULT_AMQP_URL)


@pytest.fixture(scope="session")
def mongo_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    external = os.environ.get("TEST_MONGO_URL")
    if external:
        yield external
        return
    stack = Stack(workdir=tmp_path_factory.mktemp("secantus"))
    try:
        url = stack.start_mongo()
    except StackError as exc:
        pytest.fail(f"cannot start SecantusDB: {exc}", pytrace=False)
    yield url
    stack.stop_all()


@pytest.fixture(scope="session")
def amqp_url() -> str:
    if not rabbitmq_answers(AMQP_URL):
        pytest.fail(
            f"RabbitMQ is not answering at {AMQP_URL.split('@')[-1]}; "
            "start it with `rabbitmq-server -detached` (make test does)",
            pytrace=False,
        )
    return AMQP_URL


@pytest.fixture
def namespace() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def store(mongo_url: str, namespace: str) -> AsyncIterator[Store]:
    s = Store(mongo_url, namespace, timeoutMS=TEST_MONGO_TIMEOUT_MS)
    yield s
    await remove_database(s.client, namespace)
    await s.close()


@pytest.fixture
async def bus(amqp_url: str, namespace: str) -> AsyncIterator[Bus]:
    b = Bus(amqp_url, namespace)
    await b.connect()
    yield b
    await b.close()
    await delete_namespace(amqp_url, namespace)


@pytest.fixture
def stack_env() -> dict[str, str]:
    """Settings (environment variables) a test module gives every process of its stack."""
    return {}


@pytest.fixture
def intake(
    tmp_path: Path,
    mongo_url: str,
    store: Store,
    bus: Bus,
    namespace: str,
    stack_env: dict[str, str],
) -> Iterator[Stack]:
    """Only the intake process, in this test's namespace (``stack_env`` on top): the API
    needs nothing else to answer. ``store`` and ``bus`` remove the test's database and
    broker objects afterwards."""
    s = Stack(
        workdir=tmp_path / "stack",
        namespace=namespace,
        amqp_url=bus.url,
        mongo_url=mongo_url,
        mongo_db=namespace,
        extra_env=stack_env,
    )
    try:
        s.start_service("intake", ["alimi_intake"])
        s.seed_api_keys()
    except StackError as exc:
        s.stop_all()
        pytest.fail(f"intake did not start: {exc}; logs in {s.workdir}", pytrace=False)
    yield s
    s.stop_all()


@pytest.fixture
def stack(
    tmp_path: Path,
    mongo_url: str,
    amqp_url: str,
    namespace: str,
    stack_env: dict[str, str],
    store: Store,
) -> Iterator[Stack]:
    """Every service as a real process, in this test's namespace; logs under tmp_path.

    It asks for ``store`` so that the test's database is dropped only after every
    process has stopped (not under live writers)."""
    s = Stack(
        workdir=tmp_path / "stack",
        namespace=namespace,
        amqp_url=amqp_url,
        mongo_url=mongo_url,
        mongo_db=namespace,
        extra_env={"SANDBOX_LATENCY_MS": "5", "ALIMI_LOG_LEVEL": "INFO", **stack_env},
    )
    try:
        s.start_all()
    except StackError as exc:
        s.stop_all()
        pytest.fail(f"stack did not start: {exc}; logs in {s.workdir}", pytrace=False)
    yield s
    s.stop_all()
    asyncio.run(delete_namespace(amqp_url, namespace))
