"""``Idempotency-Key`` on POST: a retried request gets the first answer, not a second effect.

The first request with a key (per API key) records a fingerprint of its
method, path and body and runs; a 2xx answer is stored with it. The same key
again with the same request returns the stored answer (``Idempotent-Replayed:
true``); with a different request it is refused (422); while the first is
still running, 409. A request that fails (4xx, 5xx, an exception) leaves no
record, so it can be retried. Records expire (a TTL index on ``expires_at``).

Handlers marked :func:`streamed` (uploads of millions of rows) never have their
body read whole: they read it through :func:`body_chunks`, which feeds the
fingerprint as the body goes by; the fingerprint is stored with the answer,
and a repeat is hashed the same way, chunk by chunk, before it is compared.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from aiohttp import web
from pymongo.errors import DuplicateKeyError

from alimi import problems
from alimi_intake.access import KEY
from alimi_intake.context import CONTEXT

HEADER = "Idempotency-Key"
VALID = re.compile(r"^[\x21-\x7e]{1,200}$")  # printable ASCII, no spaces
REPLAYED = "Idempotent-Replayed"
# The problem type of a key reused for another request: well formed, refused for what
# was done before (the OpenAPI document lists it among such refusals).
REUSED = "urn:alimi:problem:idempotency-key-reused"
KEPT_HEADERS = ("Location",)

STREAMED = "__alimi_streamed_body__"
CHUNK_BYTES = 64 * 1024

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
H = TypeVar("H", bound=Callable[..., Awaitable[web.StreamResponse]])


class _Digest:
    """The running SHA-256 of a request: method, path, then the body as it is read."""

    def __init__(self, request: web.Request) -> None:
        self._hash: Any = hashlib.sha256(_request_line(request))

    def update(self, chunk: bytes) -> None:
        self._hash.update(chunk)

    def hexdigest(self) -> str:
        return str(self._hash.hexdigest())


DIGEST = web.RequestKey("idempotency_digest", _Digest)


def streamed(handler: H) -> H:
    """Mark a handler that reads its body with :func:`body_chunks`, never whole."""
    setattr(handler, STREAMED, True)
    return handler


async def body_chunks(request: web.Request) -> AsyncIterator[bytes]:
    """The request body, chunk by chunk; under an Idempotency-Key each feeds the fingerprint."""
    digest = request.get(DIGEST)
    async for chunk in request.content.iter_chunked(CHUNK_BYTES):
        if digest is not None:
            digest.update(chunk)
        yield chunk


def _request_line(request: web.Request) -> bytes:
    return request.method.encode() + b" " + request.path.encode() + b"\n"


async def _streamed_fingerprint(request: web.Request) -> str:
    """Read what is left of the body through the digest; the fingerprint of the whole."""
    async for _ in body_chunks(request):
        pass
    return request[DIGEST].hexdigest()


@web.middleware
async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    value = request.headers.get(HEADER)
    if request.method != "POST" or value is None:
        return await handler(request)
    if not VALID.match(value):
        return problems.response(
            400,
            "Invalid Idempotency-Key",
            "the Idempotency-Key header must be 1-200 printable ASCII characters",
            errors=[{"field": HEADER, "message": "1-200 printable ASCII characters, no spaces"}],
        )
    ctx = request.app[CONTEXT]
    owner = request[KEY].key_id if KEY in request else "public"
    is_streamed = getattr(request.match_info.handler, STREAMED, False)
    fingerprint: str | None = None  # a streamed body's is known once the handler has read it
    if not is_streamed:
        body = await request.read()
        fingerprint = hashlib.sha256(_request_line(request) + body).hexdigest()
    record_id = f"{owner}:{value}"
    now = datetime.now(UTC)
    try:
        await ctx.store.idempotency.insert_one(
            {
                "_id": record_id,
                "fingerprint": fingerprint,
                "state": "running",
                "created_at": now,
                "expires_at": now + timedelta(hours=ctx.settings.idempotency_ttl_h),
            }
        )
    except DuplicateKeyError:
        return await _earlier(request, record_id, fingerprint)
    if is_streamed:
        request[DIGEST] = _Digest(request)
    try:
        response = await handler(request)
        if is_streamed and 200 <= response.status < 300:
            fingerprint = await _streamed_fingerprint(request)
    except BaseException:
        await ctx.store.idempotency.delete_one({"_id": record_id, "state": "running"})
        raise
    if not 200 <= response.status < 300 or not isinstance(response, web.Response):
        await ctx.store.idempotency.delete_one({"_id": record_id, "state": "running"})
        return response
    await ctx.store.idempotency.update_one(
        {"_id": record_id},
        {
            "$set": {
                "state": "done",
                "fingerprint": fingerprint,
                "status": response.status,
                "content_type": response.content_type,
                "body": response.body if isinstance(response.body, bytes) else b"",
                "headers": {h: response.headers[h] for h in KEPT_HEADERS if h in response.headers},
            }
        },
    )
    return response


async def _earlier(request: web.Request, record_id: str, fingerprint: str | None) -> web.Response:
    record = await request.app[CONTEXT].store.idempotency.find_one({"_id": record_id})
    if record is None:  # expired in between: ask for a retry rather than guess
        return problems.response(409, "Conflict", "retry the request")
    if fingerprint is None and record["state"] == "done":
        request[DIGEST] = _Digest(request)
        fingerprint = await _streamed_fingerprint(request)
    if fingerprint is not None and record["fingerprint"] != fingerprint:
        return problems.response(
            422,
            "Idempotency-Key reused",
            "this Idempotency-Key was used for a different request; use a new key",
            errors=[{"field": HEADER, "message": "already used with a different request"}],
            type_uri=REUSED,
        )
    if record["state"] != "done":
        return problems.response(
            409, "Conflict", "a request with this Idempotency-Key is still being processed"
        )
    response = web.Response(
        status=record["status"], body=record["body"], content_type=record["content_type"]
    )
    response.headers.update(record.get("headers") or {})
    response.headers[REPLAYED] = "true"
    return response
