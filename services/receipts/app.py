"""The receipts aiohttp application and the process around it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from aiohttp import web

from alimi import problems
from alimi.ops import ApiProcess, metrics_middleware
from alimi.process import retry_until
from alimi.store import RECEIPTS, Store
from alimi_receipts import metrics, views
from alimi_receipts.context import CONTEXT, Context
from alimi_receipts.models import CHANNELS
from alimi_receipts.settings import ReceiptsSettings


def init_app(settings: ReceiptsSettings) -> web.Application:
    app = web.Application(
        middlewares=[metrics_middleware, problems.middleware],
        client_max_size=settings.max_body_mb * 1024 * 1024,
    )
    app.add_routes(views.routes)
    metrics.declare(CHANNELS)

    async def resources(app: web.Application) -> AsyncIterator[None]:
        store = Store(settings.mongo_url.get_secret_value(), settings.mongo_db)
        # delivery owns the receipts indexes; ensuring them here too (idempotent)
        # lets this service start and work on its own
        try:
            await retry_until("mongodb", lambda: store.ensure_indexes(RECEIPTS))
        except BaseException:
            await store.close()
            raise
        app[CONTEXT] = Context(
            settings=settings, store=store, turns=asyncio.Semaphore(settings.apply_concurrency)
        )
        yield
        await store.close()

    app.cleanup_ctx.append(resources)
    return app


class ReceiptsProcess(ApiProcess):
    def __init__(self, settings: ReceiptsSettings) -> None:
        super().__init__(
            init_app(settings),
            host=settings.http_host,
            port=settings.http_port,
            ops_host=settings.ops_host,
            ops_port=settings.ops_port,
            checks={"mongodb": self._store_ready},
        )

    async def _store_ready(self) -> bool:
        return CONTEXT in self.app and await self.app[CONTEXT].store.ping()
