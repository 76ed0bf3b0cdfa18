"""Test-only ``/_sandbox`` routes: read and clear the inbox, change behaviour at run time."""

from __future__ import annotations

import json
import logging
from itertools import islice
from typing import Any

from aiohttp import web

from .behaviour import InvalidSetting, Simulation
from .inbox import Inbox

log = logging.getLogger("alimi.sandbox")


def problem(status: int, title: str, detail: str, **extra: Any) -> web.Response:
    """An RFC 9457 problem details response."""
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    return web.json_response(body, status=status, content_type="application/problem+json")


class Inspection:
    def __init__(self, inbox: Inbox, simulation: Simulation) -> None:
        self._inbox = inbox
        self._simulation = simulation

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/_sandbox/sms/messages", self.list_messages),
            web.delete("/_sandbox/sms/messages", self.clear_messages),
            web.get("/_sandbox/config", self.get_config),
            web.put("/_sandbox/config", self.put_config),
        ]

    async def list_messages(self, request: web.Request) -> web.Response:
        """Accepted messages in arrival order; ``count`` is every match, ``limit`` or not."""
        recipient_no = request.query.get("recipient_no")
        limit = None
        if "limit" in request.query:
            raw = request.query["limit"]
            if not (raw.isascii() and raw.isdigit()):
                return problem(
                    400, "Invalid query", "limit must be a non-negative integer", field="limit"
                )
            limit = int(raw)
        if recipient_no is None:
            count = len(self._inbox)
        else:
            count = sum(1 for _ in self._inbox.find(recipient_no))
        shown = islice(self._inbox.find(recipient_no), limit)
        return web.json_response(
            {"messages": [message.as_dict() for message in shown], "count": count}
        )

    async def clear_messages(self, request: web.Request) -> web.Response:
        deleted = self._inbox.clear()
        log.info("inbox cleared: %d messages removed", deleted)
        return web.json_response({"deleted": deleted})

    async def get_config(self, request: web.Request) -> web.Response:
        return web.json_response(self._simulation.behaviour.as_dict())

    async def put_config(self, request: web.Request) -> web.Response:
        try:
            changes = json.loads(await request.read())
        except ValueError:
            return problem(400, "Malformed request body", "the body must be valid JSON")
        if not isinstance(changes, dict):
            return problem(400, "Malformed request body", "the body must be a JSON object")
        try:
            behaviour = self._simulation.behaviour.updated(changes)
        except InvalidSetting as error:
            return problem(422, "Invalid configuration", str(error), field=error.field)
        self._simulation.behaviour = behaviour
        log.info("behaviour changed: %s", behaviour)
        return web.json_response(behaviour.as_dict())
