"""The connection to a RabbitMQ cluster: one node at a time, failing over to the next.

``ALIMI_AMQP_URL`` holds one broker URL, or the URLs of a cluster's nodes separated
by commas (``amqp://u:p@host1:5672/,amqp://u:p@host2:5672/``; a comma inside a
password is written ``%2C``). :class:`NodeLink` opens one ``connect_robust``
connection to the first node that answers, trying them in turn. When the connection
is lost, it points the same robust connection at the next node before aio-pika's
first reconnection attempt, so aio-pika's own recovery (channels, consumers,
declared queues and exchanges) reconnects to another node rather than waiting for
the one that went away. While the connection stays down, a watcher task checks
every :data:`RECONNECT_INTERVAL_S` that the node the next attempt aims at accepts
connections, and moves it to the next node that does if not. Each recovered
connection counts in ``alimi_broker_reconnects_total{node}``.

A connection that opened but could not be set up (the topology refused, say) is
closed before the error leaves :meth:`NodeLink.open`: a robust connection left
behind keeps reconnecting in the background for the life of the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import aio_pika
from aio_pika import RobustConnection
from prometheus_client import Counter
from yarl import URL

log = logging.getLogger("alimi.broker")

RECONNECTS = Counter(
    "alimi_broker_reconnects_total",
    "Broker connections recovered after a loss, by the node reconnected to (host:port)",
    ["node"],
)

# How long one connection attempt may take, and the pause between attempts.
CONNECT_TIMEOUT_S = 10.0
RECONNECT_INTERVAL_S = 1.0
# How long a node may take to accept a TCP connection before the next one is tried.
PROBE_TIMEOUT_S = 2.0


def node_urls(url: str) -> tuple[str, ...]:
    """The broker URLs in ``url``: one, or several separated by commas."""
    urls = tuple(part.strip() for part in url.split(",") if part.strip())
    if not urls:
        raise ValueError("no broker URL given")
    return urls


def node_name(url: str | URL) -> str:
    """``host:port`` of a broker URL: what logs and metric labels name a node by."""
    parsed = URL(str(url))
    return f"{parsed.host}:{parsed.port or 5672}"


Setup = Callable[[RobustConnection], Awaitable[None]]


class NodeLink:
    """One robust connection, to one of ``urls`` at a time."""

    def __init__(self, urls: tuple[str, ...], *, client_name: str) -> None:
        self.urls = urls
        self.client_name = client_name
        self.connection: RobustConnection | None = None
        self._next = 0  # index of the node to try next
        self._watcher: asyncio.Task[None] | None = None

    @property
    def node(self) -> str | None:
        """``host:port`` of the node the connection is (or is being) made to."""
        return node_name(self.connection.url) if self.connection is not None else None

    async def open(self, setup: Setup) -> RobustConnection:
        """Connect to the first node that answers and run ``setup`` on the connection.

        Each node is tried once, in turn from the one after the last used; the error
        of the last is raised if none answers (the caller retries). A connection
        ``setup`` fails on is closed before the error is raised.
        """
        await self.close()
        last: BaseException | None = None
        for _ in self.urls:
            url = self.urls[self._next]
            self._next = (self._next + 1) % len(self.urls)
            try:
                connection = await aio_pika.connect_robust(
                    url,
                    client_properties={"connection_name": self.client_name},
                    timeout=CONNECT_TIMEOUT_S,
                    reconnect_interval=RECONNECT_INTERVAL_S,
                )
            except Exception as exc:  # this node does not answer: the next one
                log.warning(
                    "broker node unreachable", extra={"node": node_name(url), "error": repr(exc)}
                )
                last = exc
                continue
            try:
                await setup(connection)
            except BaseException:
                await connection.close()
                raise
            self.connection = connection
            connection.close_callbacks.add(self._on_lost)
            connection.reconnect_callbacks.add(self._on_reconnected)
            self._watcher = asyncio.create_task(self._watch(connection))
            log.info("broker connected", extra={"node": node_name(url)})
            return connection
        assert last is not None
        raise last

    async def close(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
            self._watcher = None
        if self.connection is not None:
            connection, self.connection = self.connection, None
            await connection.close()

    def _fail_over(self, connection: RobustConnection) -> None:
        """Point ``connection``'s next reconnection attempt at the next node."""
        if len(self.urls) == 1:
            return
        connection.url = URL(self.urls[self._next])
        self._next = (self._next + 1) % len(self.urls)

    def _on_lost(self, connection: Any, error: BaseException | None) -> None:
        # Runs before aio-pika's first reconnection attempt: that one already goes
        # to the next node.
        current = self.connection
        if current is None or current is not connection:
            return  # our own close
        log.warning(
            "broker connection lost",
            extra={"node": node_name(current.url), "error": repr(error)},
        )
        self._fail_over(current)

    def _on_reconnected(self, connection: Any) -> None:
        node = node_name(connection.url)
        RECONNECTS.labels(node).inc()
        log.info("broker reconnected", extra={"node": node})

    async def _watch(self, connection: RobustConnection) -> None:
        """While the connection is down, keep its next attempt aimed at a node that
        answers: the one it aims at if that one does, else the next one that does."""
        while True:
            if connection.connected.is_set():
                await _lost(connection)
            await asyncio.sleep(RECONNECT_INTERVAL_S)
            if connection.connected.is_set() or connection.is_closed:
                continue
            if await _answers(str(connection.url)):
                continue
            for _ in range(len(self.urls) - 1):
                candidate = self.urls[self._next]
                if await _answers(candidate):
                    self._fail_over(connection)
                    break
                self._next = (self._next + 1) % len(self.urls)


async def _answers(url: str) -> bool:
    """Whether the node of ``url`` accepts a TCP connection on its AMQP port."""
    parsed = URL(url)
    try:
        _, writer = await asyncio.wait_for(
            asyncio.open_connection(parsed.host, parsed.port or 5672), PROBE_TIMEOUT_S
        )
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


async def _lost(connection: RobustConnection) -> None:
    """Return once ``connection`` is no longer connected."""
    lost = asyncio.Event()

    def on_close(*_: Any) -> None:
        lost.set()

    connection.close_callbacks.add(on_close)
    try:
        if connection.connected.is_set():
            await lost.wait()
    finally:
        connection.close_callbacks.discard(on_close)
