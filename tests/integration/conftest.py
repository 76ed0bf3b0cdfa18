"""Fixtures of the integration tests: the provider sandbox in-process, an HTTP client."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from alimi import templates
from alimi.bus import Bus
from alimi.store import Store
from alimi_sandbox.app import init_app
from alimi_sandbox.behaviour import Behaviour
from alimi_sandbox.config import SandboxConfig
from alimi_sandbox.kakao import Template
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
