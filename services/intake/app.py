"""The intake aiohttp application and the process around it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from aiohttp import web

from alimi import problems
from alimi.bus import Bus
from alimi.ops import ApiProcess, metrics_middleware
from alimi.process import cancel_and_wait, retry_until
from alimi.store import (
    API_KEYS,
    AUDIT,
    IDEMPOTENCY,
    IMPORT_CHUNKS,
    INCIDENTS,
    JOBS,
    NOTICES,
    OUTBOX,
    SUBJECTS,
    Store,
)
from alimi_intake import (
    access,
    console,
    dead_letter_views,
    idempotency,
    import_views,
    job_views,
    privacy_views,
    status_page,
    views,
)
from alimi_intake.context import CONTEXT, Context
from alimi_intake.jobs import Jobs
from alimi_intake.outbox import OutboxRelay
from alimi_intake.settings import IntakeSettings

OWNED_COLLECTIONS = (
    SUBJECTS,
    INCIDENTS,
    NOTICES,
    OUTBOX,
    API_KEYS,
    AUDIT,
    IDEMPOTENCY,
    IMPORT_CHUNKS,
    JOBS,
)


def init_app(settings: IntakeSettings) -> web.Application:
    app = web.Application(
        middlewares=[
            metrics_middleware,
            problems.header_limits,
            problems.middleware,
            access.middleware,
            idempotency.middleware,
        ],
        client_max_size=settings.max_body_mb * 1024 * 1024,
        # Oversized headers reach problems.header_limits rather than the parser's plain 400.
        handler_args=problems.HANDLER_ARGS,
    )
    app.add_routes(views.routes)
    app.add_routes(privacy_views.routes)
    app.add_routes(import_views.routes)
    app.add_routes(job_views.routes)
    app.add_routes(dead_letter_views.routes)
    app.add_routes(status_page.routes)
    app.add_routes(console.routes)

    async def every_route_declares_access(app: web.Application) -> None:
        access.check_routes(app)

    app.on_startup.append(every_route_declares_access)

    async def resources(app: web.Application) -> AsyncIterator[None]:
        store = Store.from_settings(settings)
        bus = Bus.from_settings(settings)
        await retry_until("mongodb", lambda: store.ensure_indexes(*OWNED_COLLECTIONS))
        await retry_until("rabbitmq", bus.connect)
        relay = OutboxRelay(store, bus, poll_s=settings.outbox_poll_s)
        jobs = Jobs(store, lease_s=settings.job_lease_s)
        app[CONTEXT] = Context(
            settings=settings, store=store, bus=bus, outbox_relay=relay, jobs=jobs
        )
        background = [
            asyncio.create_task(relay.run(), name="outbox-relay"),
            asyncio.create_task(jobs.run(), name="job-sweep"),
        ]
        yield
        await cancel_and_wait(background)
        await jobs.close()  # the jobs still running are failed, saying the process stopped
        await bus.close()
        await store.close()

    app.cleanup_ctx.append(resources)
    return app


class IntakeProcess(ApiProcess):
    def __init__(self, settings: IntakeSettings) -> None:
        super().__init__(
            init_app(settings),
            settings,
            checks={"rabbitmq": self._bus_ready, "mongodb": self._store_ready},
            shutdown_timeout_s=settings.shutdown_timeout_s,
        )

    async def _bus_ready(self) -> bool:
        return CONTEXT in self.app and self.app[CONTEXT].bus.is_connected

    async def _store_ready(self) -> bool:
        return CONTEXT in self.app and await self.app[CONTEXT].store.ping()
