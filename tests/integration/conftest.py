"""Fixtures of the integration tests: the provider sandbox in-process, an HTTP client."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from pydantic import SecretStr

from alimi import templates
from alimi.bus import Bus
from alimi.store import Store
from alimi_intake.settings import IntakeSettings
from alimi_sandbox.app import init_app
from alimi_sandbox.behaviour import Behaviour
from alimi_sandbox.config import SandboxConfig
from alimi_sandbox.kakao_simulator import Template
from support import Deliveries


@pytest.fixture
async def sandbox() -> AsyncIterator[TestServer]:
    """The sandbox with no latency, and Alimi's AlimTalk templates approved."""
    approved = {code: Template(**t) for code, t in templates.kakao_templates().items()}
    config = SandboxConfig(behaviour=Behaviour(latency_ms=0), kakao_templates=approved)
    server = TestServer(init_app(config))
    await server.start_server()
    yield server
    await server.close()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def deliveries(
    store: Store, bus: Bus, http: aiohttp.ClientSession, sandbox: TestServer
) -> Deliveries:
    return Deliveries(store, bus, http, sandbox)


@pytest.fixture
def intake_settings(mongo_url: str, amqp_url: str, namespace: str) -> Callable[..., IntakeSettings]:
    """Intake settings for this test's database and namespace; ``**changes`` on top."""

    def make(**changes: Any) -> IntakeSettings:
        return IntakeSettings(
            namespace=namespace,
            amqp_url=SecretStr(amqp_url),
            mongo_url=SecretStr(mongo_url),
            mongo_db=namespace,
            outbox_poll_s=0.2,
            **changes,
        )

    return make
