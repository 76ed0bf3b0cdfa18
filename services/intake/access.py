"""Who may call what: API keys and scopes on every route.

Every handler declares its access with :func:`requires` (a scope) or
:func:`public`; :func:`check_routes` refuses to start an app with a route that
declares neither, so a new route cannot be left open by mistake. The
middleware answers 401 (no key, or not a valid one) and 403 (the key lacks
the scope) as problem documents, and puts the key on the request for the
handler, the audit log and idempotency.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from aiohttp import web

from alimi import api_keys, problems
from alimi.api_keys import ApiKey
from alimi_intake.context import CONTEXT

KEY = web.RequestKey("api_key", ApiKey)
ACCESS = "__alimi_access__"
PUBLIC = "public"

H = TypeVar("H", bound=Callable[..., Awaitable[web.StreamResponse]])


def requires(scope: str) -> Callable[[H], H]:
    if scope not in api_keys.SCOPES:
        raise ValueError(f"unknown scope {scope!r}")

    def mark(handler: H) -> H:
        setattr(handler, ACCESS, scope)
        return handler

    return mark


def public(handler: H) -> H:
    setattr(handler, ACCESS, PUBLIC)
    return handler


def access_of(handler: Any) -> str | None:
    return getattr(handler, ACCESS, None)


def check_routes(app: web.Application) -> None:
    """Every route declares its access; raise naming the first that does not."""
    for route in app.router.routes():
        if route.method == "HEAD":
            continue
        if access_of(route.handler) is None:
            info = route.resource.canonical if route.resource else "?"
            raise RuntimeError(f"route {route.method} {info} declares no access (requires/public)")


@web.middleware
async def middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    if request.match_info.http_exception is not None:
        return await handler(request)  # 404 / 405: nothing to protect
    scope = access_of(request.match_info.handler)
    if scope == PUBLIC:
        return await handler(request)
    token = _bearer(request)
    if token is None:
        return _unauthorized("send an API key as 'Authorization: Bearer ak_...'")
    key = await api_keys.verify(request.app[CONTEXT].store, token)
    if key is None:
        return _unauthorized("the API key is not valid or was revoked")
    if scope is None or not key.allows(scope):
        return problems.response(
            403, "Forbidden", f"this API key lacks the scope {scope!r} this request needs"
        )
    request[KEY] = key
    return await handler(request)


def _bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    kind, _, token = header.partition(" ")
    if kind.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def _unauthorized(detail: str) -> web.Response:
    response = problems.response(401, "Unauthorized", detail)
    response.headers["WWW-Authenticate"] = 'Bearer realm="alimi"'
    return response
