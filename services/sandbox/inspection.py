"""Test-only ``/_sandbox`` routes: read and clear the inbox, change behaviour at run time."""

from __future__ import annotations

import json
import logging
from itertools import islice
from typing import Any

from aiohttp import web

from .behaviour import InvalidSetting, Simulation
from .inbox import Inbox, KakaoMessage, Message
from .kakao_simulator import Template, TemplateRegistry
from .reports import Reporter
from .slack_simulator import SlackWorkspace

log = logging.getLogger("alimi.sandbox")


def problem(status: int, title: str, detail: str, **extra: Any) -> web.Response:
    """An RFC 9457 problem details response."""
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    return web.json_response(body, status=status, content_type="application/problem+json")


def _limit(request: web.Request) -> int | None:
    """The optional ``limit`` query parameter; raise a 400 problem if it is not a count."""
    if "limit" not in request.query:
        return None
    raw = request.query["limit"]
    if not (raw.isascii() and raw.isdigit()):
        raise web.HTTPBadRequest(
            text=json.dumps(
                {
                    "type": "about:blank",
                    "title": "Invalid query",
                    "status": 400,
                    "detail": "limit must be a non-negative integer",
                    "field": "limit",
                }
            ),
            content_type="application/problem+json",
        )
    return int(raw)


def _listing(request: web.Request, inbox: Inbox[Any]) -> web.Response:
    """Accepted messages in arrival order; ``count`` is every match, ``limit`` or not."""
    recipient_no = request.query.get("recipient_no")
    limit = _limit(request)
    if recipient_no is None:
        count = len(inbox)
    else:
        count = inbox.count(recipient_no)
    shown = islice(inbox.find(recipient_no), limit)
    return web.json_response({"messages": [message.as_dict() for message in shown], "count": count})


class Inspection:
    def __init__(
        self,
        inbox: Inbox[Message],
        simulation: Simulation,
        *,
        kakao_inbox: Inbox[KakaoMessage] | None = None,
        templates: TemplateRegistry | None = None,
        slack: SlackWorkspace | None = None,
        reporter: Reporter | None = None,
    ) -> None:
        self._inbox = inbox
        self._simulation = simulation
        self._kakao_inbox = kakao_inbox if kakao_inbox is not None else Inbox[KakaoMessage]()
        self._templates = templates if templates is not None else TemplateRegistry({})
        self._slack = slack if slack is not None else SlackWorkspace()
        self._reporter = reporter

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/_sandbox/sms/messages", self.list_messages),
            web.delete("/_sandbox/sms/messages", self.clear_messages),
            web.get("/_sandbox/kakao/messages", self.list_kakao_messages),
            web.delete("/_sandbox/kakao/messages", self.clear_kakao_messages),
            web.get("/_sandbox/kakao/templates", self.get_templates),
            web.put("/_sandbox/kakao/templates", self.put_templates),
            web.get("/_sandbox/slack/messages", self.list_slack_messages),
            web.delete("/_sandbox/slack/messages", self.clear_slack_messages),
            web.get("/_sandbox/slack/rate_limit", self.get_slack_rate_limit),
            web.put("/_sandbox/slack/rate_limit", self.put_slack_rate_limit),
            web.get("/_sandbox/reports/stats", self.report_stats),
            web.get("/_sandbox/config", self.get_config),
            web.put("/_sandbox/config", self.put_config),
        ]

    async def list_messages(self, request: web.Request) -> web.Response:
        return _listing(request, self._inbox)

    async def clear_messages(self, request: web.Request) -> web.Response:
        deleted = self._inbox.clear()
        log.info("inbox cleared: %d messages removed", deleted)
        return web.json_response({"deleted": deleted})

    async def list_kakao_messages(self, request: web.Request) -> web.Response:
        return _listing(request, self._kakao_inbox)

    async def clear_kakao_messages(self, request: web.Request) -> web.Response:
        deleted = self._kakao_inbox.clear()
        log.info("Kakao inbox cleared: %d messages removed", deleted)
        return web.json_response({"deleted": deleted})

    async def get_templates(self, request: web.Request) -> web.Response:
        templates = self._templates.templates
        return web.json_response({code: t.as_dict() for code, t in templates.items()})

    async def put_templates(self, request: web.Request) -> web.Response:
        """Replace the registered templates with ``{code: {"content": ..., "buttons": n}}``."""
        body = await _json_object(request)
        if isinstance(body, web.Response):
            return body
        templates: dict[str, Template] = {}
        for code, value in body.items():
            try:
                templates[code] = Template.from_json(value)
            except ValueError as error:
                return problem(422, "Invalid template", f"{code}: {error}", field=code)
        self._templates.templates = templates
        log.info("Kakao templates replaced: %s", ", ".join(sorted(templates)) or "none")
        return await self.get_templates(request)

    async def list_slack_messages(self, request: web.Request) -> web.Response:
        """Posted messages in order; ``channel=`` and ``thread_ts=`` (a thread) filter."""
        found = list(self._slack.find(request.query.get("channel"), request.query.get("thread_ts")))
        shown = islice(found, _limit(request))
        return web.json_response(
            {"messages": [message.as_dict() for message in shown], "count": len(found)}
        )

    async def clear_slack_messages(self, request: web.Request) -> web.Response:
        deleted = self._slack.clear()
        return web.json_response({"deleted": deleted})

    async def get_slack_rate_limit(self, request: web.Request) -> web.Response:
        limit = self._slack.rate_limit
        return web.json_response({"count": limit.count, "retry_after": limit.retry_after})

    async def put_slack_rate_limit(self, request: web.Request) -> web.Response:
        """``{"count": n, "retry_after": s}``: the next n Slack calls answer 429."""
        body = await _json_object(request)
        if isinstance(body, web.Response):
            return body
        limit = self._slack.rate_limit
        values = {"count": body.get("count", 0), "retry_after": body.get("retry_after", 1)}
        for name, value in values.items():
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                return problem(
                    422, "Invalid rate limit", f"{name} must be an integer >= 0", field=name
                )
        unknown = set(body) - set(values)
        if unknown:
            name = sorted(unknown)[0]
            return problem(422, "Invalid rate limit", f"{name} is not a known setting", field=name)
        limit.count, limit.retry_after = values["count"], values["retry_after"]
        return await self.get_slack_rate_limit(request)

    async def report_stats(self, request: web.Request) -> web.Response:
        if self._reporter is None:
            return web.json_response(
                {"sent": 0, "failed": 0, "retried": 0, "dropped": 0, "pending": 0}
            )
        return web.json_response(self._reporter.as_dict())

    async def get_config(self, request: web.Request) -> web.Response:
        return web.json_response(self._simulation.behaviour.as_dict())

    async def put_config(self, request: web.Request) -> web.Response:
        changes = await _json_object(request)
        if isinstance(changes, web.Response):
            return changes
        try:
            behaviour = self._simulation.behaviour.updated(changes)
        except InvalidSetting as error:
            return problem(422, "Invalid configuration", str(error), field=error.field)
        self._simulation.behaviour = behaviour
        log.info("behaviour changed: %s", behaviour)
        return web.json_response(behaviour.as_dict())


async def _json_object(request: web.Request) -> dict[str, Any] | web.Response:
    """The request's JSON object, or a 400 problem response to return instead."""
    try:
        body = json.loads(await request.read())
    except ValueError:
        return problem(400, "Malformed request body", "the body must be valid JSON")
    if not isinstance(body, dict):
        return problem(400, "Malformed request body", "the body must be a JSON object")
    return body
