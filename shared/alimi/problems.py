"""RFC 9457 problem details for every HTTP error Alimi returns.

:func:`middleware` turns aiohttp's HTTP errors and any unexpected exception
into ``application/problem+json`` (never a stack trace);
:func:`from_validation_error` names each bad field of a request body.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from pydantic import ValidationError

log = logging.getLogger("alimi.http")

CONTENT_TYPE = "application/problem+json"


class ProblemError(Exception):
    """Raise from a handler or service to answer with a problem document."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str = "",
        *,
        errors: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(detail or title)
        self.status = status
        self.title = title
        self.detail = detail
        self.errors = errors or []


def response(
    status: int, title: str, detail: str = "", *, errors: list[dict[str, Any]] | None = None
) -> web.Response:
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status}
    if detail:
        body["detail"] = detail
    if errors:
        body["errors"] = errors
    return web.Response(
        status=status, text=json.dumps(body, ensure_ascii=False), content_type=CONTENT_TYPE
    )


def _field(loc: tuple[int | str, ...], prefix: str) -> str:
    path = ".".join(str(p) for p in loc)
    return f"{prefix}.{path}" if prefix and path else (prefix or path or "body")


def from_validation_error(exc: ValidationError, *, prefix: str = "") -> ProblemError:
    errors = [{"field": _field(err["loc"], prefix), "message": err["msg"]} for err in exc.errors()]
    names = ", ".join(dict.fromkeys(e["field"] for e in errors))
    return ProblemError(422, "Invalid request", f"invalid fields: {names}", errors=errors)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ProblemError as exc:
        return response(exc.status, exc.title, exc.detail, errors=exc.errors)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        problem = response(exc.status, exc.reason, exc.text or "")
        if "Allow" in exc.headers:  # a 405 names the methods the resource takes (RFC 9110)
            problem.headers["Allow"] = exc.headers["Allow"]
        return problem
    except Exception:
        log.exception("unhandled error", extra={"path": request.path, "method": request.method})
        return response(500, "Internal Server Error", "the error was logged")


async def read_json(request: web.Request) -> Any:
    """The request body as JSON, or a 400 problem saying why it is not."""
    raw = await request.read()
    if not raw:
        raise ProblemError(400, "Malformed JSON", "the request body is empty")
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ProblemError(400, "Malformed JSON", f"body is not valid JSON: {exc}") from None
