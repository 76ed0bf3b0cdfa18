"""The receipts aiohttp application and the process around it.

Two things run in it: the webhook views, which only keep reports in the
inbox (:mod:`alimi_receipts.inbox`) and answer, and ``ALIMI_APPLY_WORKERS``
appliers (:mod:`alimi_receipts.applier`) that apply the inbox in the
background, started and cancelled with the app.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from alimi import problems
from alimi.counters import Shards
from alimi.ops import ApiProcess, metrics_middleware
from alimi.process import cancel_and_wait, retry_until
from alimi.store import ATTEMPTS, DELIVERY_REPORTS, NOTICE_COUNTS, REPORT_INBOX, Store
from alimi_receipts import applier, inbox, metrics, views
from alimi_receipts.context import CONTEXT, Context
from alimi_receipts.models import CHANNELS
from alimi_receipts.settings import ReceiptsSettings

log = logging.getLogger("alimi.receipts")

BACKLOG_EVERY_S = 1.0


def init_app(settings: ReceiptsSettings) -> web.Application:
    app = web.Application(
        middlewares=[metrics_middleware, problems.middleware],
        client_max_size=settings.max_body_mb * 1024 * 1024,
    )
    app.add_routes(views.routes)
    metrics.declare(CHANNELS)

    async def resources(app: web.Application) -> AsyncIterator[None]:
        store = Store.from_settings(settings)
        # delivery owns the attempts and counters indexes; ensuring them here too
        # (idempotent) lets this service start and work on its own
        try:
            await retry_until(
                "mongodb",
                lambda: store.ensure_indexes(
                    DELIVERY_REPORTS, REPORT_INBOX, ATTEMPTS, NOTICE_COUNTS
                ),
            )
        except BaseException:
            await store.close()
            raise
        app[CONTEXT] = Context(settings=settings, store=store)
        appliers = applier.Applier(
            store,
            lease_s=settings.apply_lease_s,
            max_wait_s=settings.report_max_wait_s,
            shards=Shards.for_process("receipts", slots=settings.apply_workers),
        )
        tasks = [
            asyncio.create_task(applier.run(appliers), name=f"report-applier-{i}")
            for i in range(settings.apply_workers)
        ]
        tasks.append(asyncio.create_task(_watch_backlog(store), name="report-backlog"))
        yield
        await cancel_and_wait(tasks)
        await store.close()

    app.cleanup_ctx.append(resources)
    return app


async def _watch_backlog(store: Store) -> None:
    while True:
        try:
            documents, reports = await inbox.backlog(store)
            metrics.INBOX_DOCUMENTS.set(documents)
            metrics.INBOX_REPORTS.set(reports)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.warning("could not read the report inbox's size", exc_info=True)
        await asyncio.sleep(BACKLOG_EVERY_S)


class ReceiptsProcess(ApiProcess):
    def __init__(self, settings: ReceiptsSettings) -> None:
        super().__init__(
            init_app(settings),
            settings,
            checks={"mongodb": self._store_ready},
            shutdown_timeout_s=settings.shutdown_timeout_s,
        )

    async def _store_ready(self) -> bool:
        return CONTEXT in self.app and await self.app[CONTEXT].store.ping()
