"""The operations side-server every service runs: ``/metrics``, ``/healthz``, ``/readyz``.

``/healthz`` says the process is alive; ``/readyz`` runs the service's
readiness checks (broker and database connections) and answers 503 naming the
ones that fail.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Histogram, generate_latest

log = logging.getLogger("alimi.ops")

ReadinessCheck = Callable[[], Awaitable[bool]]


def routes(checks: dict[str, ReadinessCheck]) -> web.RouteTableDef:
    table = web.RouteTableDef()

    @table.get("/healthz")
    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    @table.get("/readyz")
    async def readyz(_: web.Request) -> web.Response:
        results = {}
        for name, check in checks.items():
            try:
                results[name] = await asyncio.wait_for(check(), timeout=3)
            except Exception:
                results[name] = False
        ready = all(results.values())
        return web.json_response({"ready": ready, "checks": results}, status=200 if ready else 503)

    @table.get("/metrics")
    async def metrics(_: web.Request) -> web.Response:
        body = generate_latest(REGISTRY)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    return table


class OpsServer:
    """A tiny aiohttp server on its own port, kept apart from any public API."""

    def __init__(
        self,
        host: str,
        port: int,
        checks: dict[str, ReadinessCheck],
        *,
        shutdown_timeout_s: float = 10.0,
    ) -> None:
        self.host = host
        self.port = port
        self.app = web.Application()
        self.app.add_routes(routes(checks))
        self.shutdown_timeout_s = shutdown_timeout_s
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        self._runner = web.AppRunner(
            self.app, access_log=None, shutdown_timeout=self.shutdown_timeout_s
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        log.info("ops server listening", extra={"host": self.host, "port": self.port})

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


class ApiSettings(Protocol):
    """What an API service's settings say about where it listens."""

    @property
    def http_host(self) -> str: ...
    @property
    def http_port(self) -> int: ...
    @property
    def ops_host(self) -> str: ...
    @property
    def ops_port(self) -> int: ...


class ApiProcess:
    """An HTTP API application and its ops side-server, started and stopped together.

    The API's resources (store, bus) open and close in the app's cleanup
    context; ``checks`` report readiness on the ops port. On stop, requests in
    flight get ``shutdown_timeout_s`` (``ALIMI_SHUTDOWN_TIMEOUT_S``) to finish and
    are then cancelled (aiohttp's own default is 60 s: past Kubernetes' grace period).
    """

    def __init__(
        self,
        app: web.Application,
        settings: ApiSettings,
        *,
        checks: dict[str, ReadinessCheck],
        shutdown_timeout_s: float = 10.0,
    ) -> None:
        self.app = app
        self.host = settings.http_host
        self.port = settings.http_port
        self.ops = OpsServer(
            settings.ops_host, settings.ops_port, checks, shutdown_timeout_s=shutdown_timeout_s
        )
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=shutdown_timeout_s)

    async def start(self) -> None:
        await self.ops.start()
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()

    async def stop(self) -> None:
        await self._runner.cleanup()
        await self.ops.stop()


HTTP_REQUESTS = Counter(
    "alimi_http_requests_total", "HTTP requests served", ["route", "method", "status"]
)
HTTP_LATENCY = Histogram(
    "alimi_http_request_duration_seconds", "HTTP request latency", ["route", "method"]
)


@web.middleware
async def metrics_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Count and time requests by route template (bounded labels, never a raw path)."""
    resource = request.match_info.route.resource
    route = resource.canonical if resource is not None else "unmatched"
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        HTTP_REQUESTS.labels(route, request.method, str(status)).inc()
        HTTP_LATENCY.labels(route, request.method).observe(time.perf_counter() - started)
