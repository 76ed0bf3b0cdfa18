"""The runtime of a queue-consuming service: store, bus, consumers, ops server.

A worker service builds a :class:`WorkerRuntime`, registers its consumers and
background loops, and hands start/stop to :func:`alimi.process.main`. Stop
drains in-flight messages up to the grace period before closing connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from alimi.bus import Bus, Consumer, Handler
from alimi.ops import OpsServer
from alimi.poison import PoisonPolicy
from alimi.process import retry_until
from alimi.settings import BaseSettings
from alimi.store import Store

log = logging.getLogger("alimi.worker")


class WorkerRuntime:
    def __init__(
        self, settings: BaseSettings, *, owned_collections: tuple[str, ...], grace_s: float
    ) -> None:
        self.settings = settings
        self.owned_collections = owned_collections
        self.grace_s = grace_s
        self.store = Store(settings.mongo_url.get_secret_value(), settings.mongo_db)
        self.bus = Bus.from_settings(settings)
        self.ops = OpsServer(
            settings.ops_host,
            settings.ops_port,
            {"rabbitmq": self._bus_ready, "mongodb": self.store.ping},
        )
        self.consumers: list[Consumer[Any]] = []
        self._loops: list[Callable[[], Coroutine[Any, Any, None]]] = []
        self._tasks: list[asyncio.Task[None]] = []

    async def _bus_ready(self) -> bool:
        return self.bus.is_connected

    def consume(
        self, queue: str, message_type: type[Any], handler: Handler[Any], *, prefetch: int
    ) -> None:
        self.consumers.append(
            Consumer(
                self.bus,
                queue,
                message_type,
                handler,
                prefetch=prefetch,
                poison=PoisonPolicy(limit=self.settings.delivery_limit),
            )
        )

    def loop(self, factory: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Run ``factory()`` as a background task for the life of the worker."""
        self._loops.append(factory)

    async def start(self) -> None:
        await self.ops.start()
        if self.owned_collections:
            await retry_until("mongodb", lambda: self.store.ensure_indexes(*self.owned_collections))
        await retry_until("rabbitmq", self.bus.connect)
        for factory in self._loops:
            self._tasks.append(asyncio.create_task(factory()))
        for consumer in self.consumers:
            await consumer.start()

    async def stop(self) -> None:
        await asyncio.gather(*(c.stop(self.grace_s) for c in self.consumers))
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.bus.close()
        await self.store.close()
        await self.ops.stop()
