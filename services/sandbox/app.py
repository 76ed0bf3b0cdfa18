"""Application factory for the provider sandbox."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from aiohttp import web

from .behaviour import Simulation
from .config import SandboxConfig
from .inbox import Inbox, KakaoMessage, Message
from .inspection import Inspection
from .kakao_simulator import KakaoGateway, TemplateRegistry
from .reports import Channel, Reporter
from .slack_simulator import SlackApi, SlackWorkspace
from .sms_simulator import SmsGateway

log = logging.getLogger("alimi.sandbox")

CONFIG = web.AppKey("config", SandboxConfig)
INBOX: web.AppKey[Inbox[Message]] = web.AppKey("inbox", Inbox)
KAKAO_INBOX: web.AppKey[Inbox[KakaoMessage]] = web.AppKey("kakao_inbox", Inbox)
KAKAO_TEMPLATES = web.AppKey("kakao_templates", TemplateRegistry)
SLACK = web.AppKey("slack", SlackWorkspace)
REPORTER = web.AppKey("reporter", Reporter)
SIMULATION = web.AppKey("simulation", Simulation)


def init_app(config: SandboxConfig) -> web.Application:
    inbox = Inbox[Message]()
    kakao_inbox = Inbox[KakaoMessage]()
    templates = TemplateRegistry(config.kakao_templates)
    slack = SlackWorkspace()
    simulation = Simulation(config.behaviour, seed=config.seed)
    reporter = Reporter(
        urls={Channel.SMS: config.sms_report_url, Channel.KAKAO: config.kakao_report_url},
        secret=config.report_secret,
        delay_ms=config.report_delay_ms,
        retry_delays=config.report_retry_delays,
        timeout=config.report_timeout_s,
        max_in_memory=config.report_max_in_memory,
    )
    app = web.Application()
    app[CONFIG] = config
    app[INBOX] = inbox
    app[KAKAO_INBOX] = kakao_inbox
    app[KAKAO_TEMPLATES] = templates
    app[SLACK] = slack
    app[REPORTER] = reporter
    app[SIMULATION] = simulation
    gateway = SmsGateway(
        app_key=config.app_key,
        secret_key=config.secret_key,
        sender_numbers=config.sender_numbers,
        inbox=inbox,
        simulation=simulation,
        reporter=reporter,
    )
    kakao = KakaoGateway(
        app_key=config.kakao_app_key_or_default,
        secret_key=config.kakao_secret_key_or_default,
        sender_key=config.kakao_sender_key,
        templates=templates,
        inbox=kakao_inbox,
        simulation=simulation,
        reporter=reporter,
    )
    app.add_routes(gateway.routes())
    app.add_routes(kakao.routes())
    app.add_routes(
        SlackApi(token=config.slack_token, workspace=slack, simulation=simulation).routes()
    )
    app.add_routes(
        Inspection(
            inbox,
            simulation,
            kakao_inbox=kakao_inbox,
            templates=templates,
            slack=slack,
            reporter=reporter,
        ).routes()
    )
    app.add_routes([web.get("/healthz", _healthy), web.get("/readyz", _healthy)])
    app.cleanup_ctx.append(_reports)
    app.on_shutdown.append(_stop_hanging)
    app.on_cleanup.append(_log_stop)
    app.on_cleanup.append(_close_inboxes)
    return app


async def _close_inboxes(app: web.Application) -> None:
    app[INBOX].close()
    app[KAKAO_INBOX].close()


async def _stop_hanging(app: web.Application) -> None:
    """Answer held send calls and waiting listings now: shutdown runs this before it
    waits for open requests."""
    app[SIMULATION].stop_hanging()
    for arrivals in (app[INBOX].arrivals, app[KAKAO_INBOX].arrivals, app[SLACK].arrivals):
        arrivals.close()


async def _reports(app: web.Application) -> AsyncIterator[None]:
    """Run the delivery-report sender (and its one HTTP session) for the app's lifetime."""
    reporter = app[REPORTER]
    await reporter.start()
    yield
    await reporter.stop()


async def _healthy(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def _log_stop(app: web.Application) -> None:
    log.info(
        "sandbox stopping; inboxes held %d SMS and %d Kakao messages",
        len(app[INBOX]),
        len(app[KAKAO_INBOX]),
    )
