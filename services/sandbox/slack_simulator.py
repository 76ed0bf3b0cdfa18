"""An imitation of two Slack Web API methods: ``chat.postMessage`` and ``chat.update``.

Point ``slack_sdk``'s ``AsyncWebClient(base_url=f"{sandbox}/slack/api/")`` here. Like
Slack, errors are HTTP 200 with ``{"ok": false, "error": ...}``, except a rate limit,
which is HTTP 429 with ``Retry-After``. A message's ``metadata`` (``event_type`` and
``event_payload``) is kept, so listings can pick messages by their event type.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from .arrivals import Arrivals
from .behaviour import Simulation

log = logging.getLogger("alimi.sandbox")

BOT_USER = "USANDBOXBOT"
BOT_ID = "BSANDBOXBOT"


class SlackError(Exception):
    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error


@dataclass(slots=True)
class SlackMessage:
    channel: str
    ts: str
    text: str | None
    blocks: list[Any] | None
    thread_ts: str | None
    received_at: str
    updated_at: str | None = None
    reply_count: int = 0
    metadata: dict[str, Any] | None = None  # {"event_type": ..., "event_payload": {...}}

    def as_api(self) -> dict[str, Any]:
        message: dict[str, Any] = {
            "type": "message",
            "user": BOT_USER,
            "bot_id": BOT_ID,
            "text": self.text or "",
            "ts": self.ts,
        }
        if self.blocks is not None:
            message["blocks"] = self.blocks
        if self.thread_ts is not None:
            message["thread_ts"] = self.thread_ts
        if self.metadata is not None:
            message["metadata"] = self.metadata
        return message

    def as_dict(self) -> dict[str, Any]:
        return {
            "channel": self.channel,
            "ts": self.ts,
            "text": self.text,
            "blocks": self.blocks,
            "thread_ts": self.thread_ts,
            "reply_count": self.reply_count,
            "received_at": self.received_at,
            "updated_at": self.updated_at,
            "metadata": self.metadata,
        }


@dataclass(slots=True)
class RateLimit:
    """The next ``count`` calls answer 429 with ``Retry-After: retry_after``."""

    count: int = 0
    retry_after: int = 1


@dataclass(slots=True)
class SlackWorkspace:
    """Every message posted, in order, and an index by (channel, ts) for updates;
    ``arrivals`` wakes listings waiting for messages when one is posted or edited."""

    messages: list[SlackMessage] = field(default_factory=list)
    by_ts: dict[tuple[str, str], SlackMessage] = field(default_factory=dict)
    rate_limit: RateLimit = field(default_factory=RateLimit)
    arrivals: Arrivals = field(default_factory=Arrivals)
    _last_micros: int = 0

    def next_ts(self) -> str:
        """A unique, increasing Slack timestamp such as ``"1732845476.000100"``."""
        micros = max(time.time_ns() // 1000, self._last_micros + 1)
        self._last_micros = micros
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"

    def find(
        self, channel: str | None, thread_ts: str | None, event_type: str | None = None
    ) -> Iterable[SlackMessage]:
        for message in self.messages:
            if channel is not None and message.channel != channel:
                continue
            if thread_ts is not None and thread_ts not in (message.thread_ts, message.ts):
                continue
            if event_type is not None and (message.metadata or {}).get("event_type") != event_type:
                continue
            yield message

    def clear(self) -> int:
        removed = len(self.messages)
        self.messages = []
        self.by_ts = {}
        return removed


class SlackApi:
    def __init__(self, *, token: str, workspace: SlackWorkspace, simulation: Simulation) -> None:
        self._token = token
        self._workspace = workspace
        self._simulation = simulation

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/slack/api/chat.postMessage", self.post_message),
            web.post("/slack/api/chat.update", self.update),
        ]

    async def post_message(self, request: web.Request) -> web.Response:
        return await self._call(request, self._post_message)

    async def update(self, request: web.Request) -> web.Response:
        return await self._call(request, self._update)

    async def _call(self, request: web.Request, method: Any) -> web.Response:
        await self._simulation.pause()
        limit = self._workspace.rate_limit
        if limit.count > 0:
            limit.count -= 1
            return web.json_response(
                {"ok": False, "error": "ratelimited"},
                status=429,
                headers={"Retry-After": str(limit.retry_after)},
            )
        try:
            args = await _arguments(request)
            if _token(request, args) != self._token:
                raise SlackError("invalid_auth" if _token(request, args) else "not_authed")
            result: dict[str, Any] = method(args)
        except SlackError as error:
            return web.json_response({"ok": False, "error": error.error})
        return web.json_response({"ok": True} | result)

    def _post_message(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = _channel(args)
        text, blocks = _content(args)
        thread_ts = _optional_text(args, "thread_ts")
        workspace = self._workspace
        message = SlackMessage(
            channel=channel,
            ts=workspace.next_ts(),
            text=text,
            blocks=blocks,
            thread_ts=thread_ts,
            received_at=_now(),
            metadata=_metadata(args),
        )
        if thread_ts is not None:
            parent = workspace.by_ts.get((channel, thread_ts))
            if parent is None:
                raise SlackError("thread_not_found")
            parent.reply_count += 1
        workspace.messages.append(message)
        workspace.by_ts[channel, message.ts] = message
        workspace.arrivals.recorded()
        return {"channel": channel, "ts": message.ts, "message": message.as_api()}

    def _update(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = _channel(args)
        ts = _optional_text(args, "ts")
        if ts is None:
            raise SlackError("message_not_found")
        message = self._workspace.by_ts.get((channel, ts))
        if message is None:
            raise SlackError("message_not_found")
        text, blocks = _content(args)
        metadata = _metadata(args)
        message.text = text
        message.blocks = blocks
        if metadata is not None:  # as in Slack, an update without metadata keeps it
            message.metadata = metadata
        message.updated_at = _now()
        self._workspace.arrivals.recorded()
        return {"channel": channel, "ts": ts, "text": text or "", "message": message.as_api()}


async def _arguments(request: web.Request) -> dict[str, Any]:
    """Slack takes JSON bodies and form bodies, where ``blocks`` is a JSON string."""
    if request.content_type == "application/json":
        try:
            body = json.loads(await request.read() or b"{}")
        except ValueError:
            raise SlackError("invalid_json") from None
        if not isinstance(body, dict):
            raise SlackError("invalid_json")
        return body
    form = await request.post()
    args: dict[str, Any] = {k: v for k, v in form.items() if isinstance(v, str)}
    args.update((k, v) for k, v in request.query.items() if k not in args)
    for name in ("blocks", "attachments"):
        if isinstance(args.get(name), str):
            try:
                args[name] = json.loads(args[name])
            except ValueError:
                raise SlackError(f"invalid_{name}") from None
    return args


def _token(request: web.Request, args: dict[str, Any]) -> str | None:
    authorization = request.headers.get("Authorization", "")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() == "bearer" and token:
        return token.strip()
    value = args.get("token")
    return value if isinstance(value, str) else None


def _channel(args: dict[str, Any]) -> str:
    channel = args.get("channel")
    if not isinstance(channel, str) or not channel:
        raise SlackError("channel_not_found")
    return channel


def _optional_text(args: dict[str, Any], name: str) -> str | None:
    value = args.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str):
        raise SlackError(f"invalid_{name}")
    return value


def _metadata(args: dict[str, Any]) -> dict[str, Any] | None:
    """``{"event_type": "...", "event_payload": {...}}`` (a JSON string in a form body)."""
    value = args.get("metadata")
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise SlackError("invalid_metadata_format") from None
    if not isinstance(value, dict):
        raise SlackError("invalid_metadata_format")
    event_type, payload = value.get("event_type"), value.get("event_payload")
    if not isinstance(event_type, str) or not event_type or not isinstance(payload, dict):
        raise SlackError("invalid_metadata_schema")
    return {"event_type": event_type, "event_payload": payload}


def _content(args: dict[str, Any]) -> tuple[str | None, list[Any] | None]:
    text = args.get("text")
    blocks = args.get("blocks")
    if text is not None and not isinstance(text, str):
        raise SlackError("invalid_arguments")
    if blocks is not None and not isinstance(blocks, list):
        raise SlackError("invalid_blocks")
    if not text and not blocks:
        raise SlackError("no_text")
    return text, blocks


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")
