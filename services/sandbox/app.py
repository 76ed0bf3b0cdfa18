"""Application factory for the provider sandbox."""

from __future__ import annotations

import logging

from aiohttp import web

from .behaviour import Simulation
from .config import SandboxConfig
from .inbox import Inbox
from .inspection import Inspection
from .sms_gateway import SmsGateway

log = logging.getLogger("alimi.sandbox")

CONFIG = web.AppKey("config", SandboxConfig)
INBOX = web.AppKey("inbox", Inbox)
SIMULATION = web.AppKey("simulation", Simulation)


def init_app(config: SandboxConfig) -> web.Application:
    inbox = Inbox()
    simulation = Simulation(config.behaviour, seed=config.seed)
    app = web.Application()
    app[CONFIG] = config
    app[INBOX] = inbox
    app[SIMULATION] = simulation
    gateway = SmsGateway(
        app_key=config.app_key,
        secret_key=config.secret_key,
        sender_numbers=config.sender_numbers,
        inbox=inbox,
        simulation=simulation,
    )
    app.add_routes(gateway.routes())
    app.add_routes(Inspection(inbox, simulation).routes())
    app.add_routes([web.get("/healthz", _healthy), web.get("/readyz", _healthy)])
    app.on_cleanup.append(_log_stop)
    return app


async def _healthy(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def _log_stop(app: web.Application) -> None:
    log.info("sandbox stopping; inbox held %d messages", len(app[INBOX]))
