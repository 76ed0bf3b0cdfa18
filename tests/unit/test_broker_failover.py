"""Where NodeLink aims a lost connection's next attempt (shared/alimi/broker.py).

A stand-in for aio-pika's robust connection holds what the link reads and writes
(``url``, ``connected``, ``close_callbacks``); the nodes are real TCP ports on this
machine, one listening and the others not.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aio_pika.tools import CallbackCollection
from yarl import URL

from alimi import broker


class StandIn:
    """What NodeLink uses of a robust connection."""

    def __init__(self, url: str) -> None:
        self.url = URL(url)
        self.connected = asyncio.Event()
        self.is_closed = False
        self.close_callbacks: CallbackCollection[Any, Any] = CallbackCollection(self)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def listening_port() -> AsyncIterator[int]:
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()


def url(port: int) -> str:
    return f"amqp://guest:guest@127.0.0.1:{port}/"


async def test_when_the_connection_is_lost__then_the_next_attempt_goes_to_the_next_node() -> None:
    nodes = (url(closed_port()), url(closed_port()), url(closed_port()))
    link = broker.NodeLink(nodes, client_name="alimi:test")
    connection = StandIn(nodes[0])
    link.connection = connection  # type: ignore[assignment]
    link._next = 1  # as after open() connected to the first

    link._on_lost(connection, ConnectionError("node stopped"))

    assert connection.url == URL(nodes[1])


async def test_when_the_node_aimed_at_is_down_too__then_the_watcher_moves_to_one_that_answers(
    listening_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(broker, "RECONNECT_INTERVAL_S", 0.01)
    down, also_down, up = url(closed_port()), url(closed_port()), url(listening_port)
    link = broker.NodeLink((down, also_down, up), client_name="alimi:test")
    connection = StandIn(also_down)  # lost, and its next attempt aims at a node that is down
    link.connection = connection  # type: ignore[assignment]
    link._next = 2

    watcher = asyncio.create_task(link._watch(connection))  # type: ignore[arg-type]
    try:
        for _ in range(500):  # a few probes, bounded
            if connection.url == URL(up):
                break
            await asyncio.sleep(0.01)
        assert connection.url == URL(up)
        for _ in range(5):  # and it stays there: that node answers
            await asyncio.sleep(0.02)
            assert connection.url == URL(up)
    finally:
        watcher.cancel()


async def test_when_the_node_aimed_at_answers__then_the_watcher_leaves_the_attempt_there(
    listening_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(broker, "RECONNECT_INTERVAL_S", 0.01)
    up, down = url(listening_port), url(closed_port())
    link = broker.NodeLink((down, up), client_name="alimi:test")
    connection = StandIn(up)
    link.connection = connection  # type: ignore[assignment]

    watcher = asyncio.create_task(link._watch(connection))  # type: ignore[arg-type]
    try:
        for _ in range(10):
            await asyncio.sleep(0.02)
            assert connection.url == URL(up)
    finally:
        watcher.cancel()
