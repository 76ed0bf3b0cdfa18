"""RFC 9457 problem details for every HTTP error Alimi returns.

:func:`middleware` turns aiohttp's HTTP errors and any unexpected exception
into ``application/problem+json`` (never a stack trace);
:func:`from_validation_error` names each bad field of a request body;
:func:`read_json` reads a JSON body, or says why it cannot be read;
:func:`header_limits` refuses oversized headers and URLs, naming them.

JSON is parsed by :func:`loads`, which first measures how deeply arrays and
objects nest (a linear scan of the bytes, without parsing) and refuses more
than :data:`MAX_JSON_DEPTH` levels: ``json.loads`` recurses once per level and
would raise ``RecursionError`` on, say, ten thousand nested arrays.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from pydantic import ValidationError

log = logging.getLogger("alimi.http")

CONTENT_TYPE = "application/problem+json"
BLANK = "about:blank"  # RFC 9457: the problem is what its status says
JSON = "application/json"
UTF_8 = frozenset({"utf-8", "utf8"})

# Deeper than any body the API takes (an incident nests 5 levels) by a wide margin.
MAX_JSON_DEPTH = 32
# A JSON string, escapes included: the brackets inside one are text, not structure.
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_A_BRACKET = bytes(sorted(set(range(256)) - set(b"[]{}")))
_OPENING = frozenset(b"[{")


class TooDeep(ValueError):
    """A JSON document nests arrays and objects more than :data:`MAX_JSON_DEPTH` deep."""

    def __init__(self, limit: int = MAX_JSON_DEPTH) -> None:
        super().__init__(f"arrays and objects are nested more than {limit} levels deep")
        self.limit = limit


def too_deep(raw: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether the JSON text ``raw`` (UTF-8) nests arrays and objects over ``limit`` levels.

    Counts brackets outside strings, in one pass over the bytes; nothing is
    parsed. On malformed text the answer may be either: the parser refuses it.
    """
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return False
    depth = 0
    for byte in _STRING.sub(b"", raw).translate(None, _NOT_A_BRACKET):
        if byte in _OPENING:
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False


def loads(raw: bytes | bytearray) -> Any:
    """``json.loads``, refusing (:class:`TooDeep`) text nested over :data:`MAX_JSON_DEPTH`
    before the parser sees it. Raises what ``json.loads`` raises for malformed text."""
    encoding = json.detect_encoding(raw)
    scanned = bytes(raw)
    if not encoding.startswith("utf-8"):
        # UTF-16 or -32: scanned as UTF-8, where a quote or bracket is one byte of its own.
        scanned = scanned.decode(encoding, "surrogatepass").encode("utf-8", "surrogatepass")
    if too_deep(scanned):
        raise TooDeep()
    return json.loads(raw)


class ProblemError(Exception):
    """Raise from a handler or service to answer with a problem document.

    ``type_uri`` names a kind of problem a client may want to tell apart from
    others of its status (RFC 9457 ``type``); most are ``about:blank``.
    """

    def __init__(
        self,
        status: int,
        title: str,
        detail: str = "",
        *,
        errors: list[dict[str, Any]] | None = None,
        type_uri: str = BLANK,
    ) -> None:
        super().__init__(detail or title)
        self.status = status
        self.title = title
        self.detail = detail
        self.errors = errors or []
        self.type_uri = type_uri


def response(
    status: int,
    title: str,
    detail: str = "",
    *,
    errors: list[dict[str, Any]] | None = None,
    type_uri: str = BLANK,
) -> web.Response:
    body: dict[str, Any] = {"type": type_uri, "title": title, "status": status}
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

# aiohttp's HTTP parser refuses a request line or a header over its limits (8190
# bytes by default) with a plain-text 400, before any middleware runs. An app that
# passes HANDLER_ARGS (web.Application(handler_args=...)) raises those limits so
# that such requests reach header_limits, which refuses them at the limits below
# with a problem document naming the header; only what is over the parser's own
# limit still gets its plain answer.
MAX_HEADER_BYTES = 8190  # one header field, name and value
MAX_URL_BYTES = 8190  # the request target: path and query
PARSER_LIMIT_BYTES = 128 * 1024
HANDLER_ARGS = {"max_line_size": PARSER_LIMIT_BYTES, "max_field_size": PARSER_LIMIT_BYTES}


def _shown(name: bytes) -> str:
    text = name.decode("latin-1")
    return text if len(text) <= 60 else f"{text[:60]}…"


@web.middleware
async def header_limits(request: web.Request, handler: Handler) -> web.StreamResponse:
    """431 for a header field over :data:`MAX_HEADER_BYTES`, 414 for a URL over
    :data:`MAX_URL_BYTES`: problem documents naming what is too long."""
    for name, value in request.raw_headers:
        size = len(name) + len(value)
        if size > MAX_HEADER_BYTES:
            shown = _shown(name)
            message = f"{size} bytes with its name; at most {MAX_HEADER_BYTES}"
            return response(
                431,
                "Request Header Fields Too Large",
                f"the header {shown} is {message}",
                errors=[{"field": shown, "message": message}],
            )
    target = len(request.raw_path.encode("utf-8", "surrogateescape"))
    if target > MAX_URL_BYTES:
        return response(
            414,
            "URI Too Long",
            f"the path and query are {target} bytes; at most {MAX_URL_BYTES}",
        )
    return await handler(request)


@web.middleware
async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ProblemError as exc:
        return response(exc.status, exc.title, exc.detail, errors=exc.errors, type_uri=exc.type_uri)
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


def nested_too_deeply(exc: TooDeep, *, field: str = "body") -> ProblemError:
    """The 400 answer to JSON nested too deeply, naming where (the body, a row)."""
    return ProblemError(
        400,
        "JSON nested too deeply",
        f"{field}: {exc}; at most {exc.limit} levels are read",
        errors=[{"field": field, "message": str(exc)}],
    )


def unsupported_media_type(request: web.Request, accepted: str) -> ProblemError:
    """The 415 answer to a body of a type (or charset) this route does not read."""
    sent = request.headers.get("Content-Type")
    return ProblemError(
        415,
        "Unsupported Media Type",
        (f"Content-Type {sent} is not accepted here" if sent else "the Content-Type is missing")
        + f"; send {accepted}",
        errors=[{"field": "Content-Type", "message": f"expected {accepted}"}],
    )


async def read_json(request: web.Request, *, accepted: str = JSON) -> Any:
    """The request body as JSON; a 415 problem unless it is sent as ``application/json``
    (UTF-8, as RFC 8259 wants; ``accepted`` names what else the route reads), a 400 one
    saying why it is not JSON."""
    if request.content_type != JSON or (request.charset or "utf-8").lower() not in UTF_8:
        raise unsupported_media_type(request, accepted)
    raw = await request.read()
    if not raw:
        raise ProblemError(400, "Malformed JSON", "the request body is empty")
    try:
        return loads(raw)
    except TooDeep as exc:
        raise nested_too_deeply(exc) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ProblemError(400, "Malformed JSON", f"body is not valid JSON: {exc}") from None
