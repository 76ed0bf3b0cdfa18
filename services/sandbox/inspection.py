"""Test-only ``/_sandbox`` routes: read and clear the inbox, change behaviour at run time.

Every answer, problem documents included, is UTF-8 JSON with Hangul as it is
(``ensure_ascii=False``), readable in a terminal. The message listings can
wait: ``wait_for=n`` answers once n messages match (or after ``wait_s``
seconds, with ``"timed_out": true`` and what is there), woken by each message
recorded (:mod:`.arrivals`), not by polling.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from itertools import islice
from typing import Any

from aiohttp import web

from .arrivals import Arrivals
from .behaviour import InvalidSetting, Simulation
from .inbox import Inbox, KakaoMessage, Message
from .kakao_simulator import Template, TemplateRegistry
from .reports import Reporter
from .slack_simulator import SlackWorkspace

log = logging.getLogger("alimi.sandbox")

DEFAULT_WAIT_S = 30.0
MAX_WAIT_S = 300.0
_COUNT = re.compile(r"[0-9]+")
_SECONDS = re.compile(r"[0-9]+(\.[0-9]+)?")


def _dumps(body: Any) -> str:
    return json.dumps(body, ensure_ascii=False)


def answer(body: Any, *, status: int = 200, content_type: str = "application/json") -> web.Response:
    """``body`` as UTF-8 JSON (``charset=utf-8``), non-ASCII text as it is."""
    return web.json_response(body, status=status, content_type=content_type, dumps=_dumps)


def problem(status: int, title: str, detail: str, **extra: Any) -> web.Response:
    """An RFC 9457 problem details response."""
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    return answer(body, status=status, content_type="application/problem+json")


def _bad_query(field: str, detail: str) -> web.HTTPBadRequest:
    """A 400 problem naming the query parameter ``field``, to raise from a handler."""
    body = {
        "type": "about:blank",
        "title": "Invalid query",
        "status": 400,
        "detail": detail,
        "field": field,
    }
    return web.HTTPBadRequest(text=_dumps(body), content_type="application/problem+json")


def _limit(request: web.Request) -> int | None:
    """The optional ``limit`` query parameter; raise a 400 problem if it is not a count."""
    if "limit" not in request.query:
        return None
    raw = request.query["limit"]
    if not _COUNT.fullmatch(raw):
        raise _bad_query("limit", "limit must be a non-negative integer")
    return int(raw)


@dataclass(frozen=True)
class Wait:
    """``wait_for=n``: answer once n messages match, or after ``seconds`` with what is there."""

    count: int
    seconds: float


def _wait(request: web.Request) -> Wait | None:
    """The optional ``wait_for`` and ``wait_s`` query parameters; 400 problems if wrong."""
    query = request.query
    if "wait_for" not in query:
        if "wait_s" in query:
            raise _bad_query("wait_s", "wait_s is how long wait_for waits; give wait_for too")
        return None
    if not _COUNT.fullmatch(query["wait_for"]):
        raise _bad_query("wait_for", "wait_for must be a non-negative integer")
    raw = query.get("wait_s", str(DEFAULT_WAIT_S))
    if not _SECONDS.fullmatch(raw) or float(raw) > MAX_WAIT_S:
        raise _bad_query("wait_s", f"wait_s must be a number of seconds from 0 to {MAX_WAIT_S:.0f}")
    return Wait(int(query["wait_for"]), float(raw))


async def _waited(
    arrivals: Arrivals, count: Callable[[], int], wait: Wait | None
) -> dict[str, Any]:
    """Wait as ``wait`` asks; what the answer says about it (nothing if it did not wait)."""
    if wait is None:
        return {}
    need = wait.count
    reached = await arrivals.until(lambda: count() >= need, wait.seconds)
    return {"timed_out": not reached}


async def _listing(request: web.Request, inbox: Inbox[Any]) -> web.Response:
    """Accepted messages in arrival order; ``count`` is every match, ``limit`` or not."""
    recipient_no = request.query.get("recipient_no")
    limit = _limit(request)

    def count() -> int:
        return len(inbox) if recipient_no is None else inbox.count(recipient_no)

    waited = await _waited(inbox.arrivals, count, _wait(request))
    shown = islice(inbox.find(recipient_no), limit)
    messages = [message.as_dict() for message in shown]
    return answer({"messages": messages, "count": count(), **waited})


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
        return await _listing(request, self._inbox)

    async def clear_messages(self, request: web.Request) -> web.Response:
        deleted = self._inbox.clear()
        log.info("inbox cleared: %d messages removed", deleted)
        return answer({"deleted": deleted})

    async def list_kakao_messages(self, request: web.Request) -> web.Response:
        return await _listing(request, self._kakao_inbox)

    async def clear_kakao_messages(self, request: web.Request) -> web.Response:
        deleted = self._kakao_inbox.clear()
        log.info("Kakao inbox cleared: %d messages removed", deleted)
        return answer({"deleted": deleted})

    async def get_templates(self, request: web.Request) -> web.Response:
        templates = self._templates.templates
        return answer({code: t.as_dict() for code, t in templates.items()})

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
        """Posted messages in order; ``channel=``, ``thread_ts=`` (a thread) and
        ``event_type=`` (of the message's metadata) filter."""
        query = request.query
        limit = _limit(request)

        def found() -> list[Any]:
            return list(
                self._slack.find(
                    query.get("channel"), query.get("thread_ts"), query.get("event_type")
                )
            )

        waited = await _waited(self._slack.arrivals, lambda: len(found()), _wait(request))
        matching = found()
        messages = [message.as_dict() for message in islice(matching, limit)]
        return answer({"messages": messages, "count": len(matching), **waited})

    async def clear_slack_messages(self, request: web.Request) -> web.Response:
        deleted = self._slack.clear()
        return answer({"deleted": deleted})

    async def get_slack_rate_limit(self, request: web.Request) -> web.Response:
        limit = self._slack.rate_limit
        return answer({"count": limit.count, "retry_after": limit.retry_after})

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
            return answer({"sent": 0, "failed": 0, "retried": 0, "dropped": 0, "pending": 0})
        return answer(self._reporter.as_dict())

    async def get_config(self, request: web.Request) -> web.Response:
        return answer(self._simulation.behaviour.as_dict())

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
        return answer(behaviour.as_dict())


async def _json_object(request: web.Request) -> dict[str, Any] | web.Response:
    """The request's JSON object, or a 400 problem response to return instead."""
    try:
        body = json.loads(await request.read())
    except ValueError:
        return problem(400, "Malformed request body", "the body must be valid JSON")
    if not isinstance(body, dict):
        return problem(400, "Malformed request body", "the body must be a JSON object")
    return body
