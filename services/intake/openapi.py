"""The OpenAPI 3.1 document of the intake API, built from the models that validate requests.

Request bodies come from the pydantic models the views validate with
(``model_json_schema``), so the document cannot drift from the checks. Every
route has an :class:`~alimi_intake.openapi_operations.Operation` (a test
compares them with the route table); the statuses each can answer are
derived from what the route does: a protected route can say 401 and 403, a
POST can carry a malformed or reused ``Idempotency-Key`` (400, 422, 409) and
a body that is malformed (400), too large (413), of a media type it does not
read (415) or invalid (422), a path id can be unknown (404); any request can
carry a header or a URL too long (431, 414). Every error is a problem
document (RFC 9457), except the status page's 404, which people's browsers
read.

A request the document allows is answered 2xx, unless it meets a refusal JSON
Schema cannot express: what was done before (an Idempotency-Key used for
another request, a cursor naming no incident). Those are listed under their
status as ``x-alimi-refusals``, by the problem ``type`` the answer carries,
so a client (and the schemathesis test) can tell them from a broken rule.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from aiohttp.web_urldispatcher import AbstractRoute
from pydantic import BaseModel

from alimi.problems import MAX_HEADER_BYTES, MAX_JSON_DEPTH, MAX_URL_BYTES
from alimi_intake import idempotency, rows
from alimi_intake.access import PUBLIC, access_of
from alimi_intake.openapi_operations import (
    JSON,
    NDJSON,
    OPERATIONS,
    PATH_PARAMETERS,
    PROBLEM,
    REFUSALS,
    REUSED_KEY,
    Operation,
    header,
)

DEPTH = (
    f"JSON (a body, or an NDJSON line) nests arrays and objects at most {MAX_JSON_DEPTH} levels"
    " deep: deeper is refused (400, or a rejected row) before it is parsed"
)


PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "RFC 9457 problem details; errors names each bad field of a request",
    "required": ["type", "title", "status"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["field", "message"],
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
            },
        },
    },
}


def _problem(description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "description": description,
        "content": {PROBLEM: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }
    if headers:
        answer["headers"] = headers
    return answer


def _ok(op: Operation, *, post: bool) -> dict[str, Any]:
    headers = dict(op.ok_headers)
    if post:
        headers[idempotency.REPLAYED] = header(
            "true: the stored answer to an earlier request with this Idempotency-Key",
            required=False,
        )
    answer: dict[str, Any] = {"description": "done" if op.ok == 204 else "success"}
    if op.ok != 204:
        answer["content"] = {op.ok_type: {"schema": op.ok_schema}}
    if headers:
        answer["headers"] = headers
    return answer


def _body(op: Operation, body: type[BaseModel], schemas: dict[str, Any]) -> dict[str, Any]:
    full = body.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(full.pop("$defs", {}))
    schemas[body.__name__] = full
    ref = {"$ref": f"#/components/schemas/{body.__name__}"}
    if not op.body_is_list:
        return {"required": True, "description": DEPTH, "content": {JSON: {"schema": ref}}}
    # Or NDJSON: one JSON object per line, each as above; three names for it are in use.
    ndjson = {"schema": rows.NDJSON_SCHEMA}
    return {
        "required": True,
        "description": DEPTH,
        "content": {
            JSON: {"schema": {"type": "array", "items": ref, "minItems": 1}},
            **{media: ndjson for media in (NDJSON, "application/ndjson", "application/jsonl")},
        },
    }


def _operation(route: AbstractRoute, op: Operation, schemas: dict[str, Any]) -> dict[str, Any]:
    path = route.resource.canonical if route.resource else ""
    scope = access_of(route.handler)
    post = route.method == "POST"
    responses: dict[str, Any] = {
        str(op.ok): _ok(op, post=post),
        "414": _problem(f"the path and query are over {MAX_URL_BYTES} bytes"),
        "431": _problem(f"a header is over {MAX_HEADER_BYTES} bytes; errors names it"),
    }
    operation: dict[str, Any] = {
        "summary": op.summary,
        "operationId": route.handler.__name__,
        "responses": responses,
    }
    parameters: list[dict[str, Any]] = []
    for name in (part[1:-1] for part in path.split("/") if part.startswith("{")):
        if name not in PATH_PARAMETERS:
            raise RuntimeError(f"path parameter {name!r} of {path} has no schema")
        parameters.append(
            {"name": name, "in": "path", "required": True, "schema": PATH_PARAMETERS[name]}
        )
        responses["404"] = _problem("not found")
    if scope != PUBLIC:
        operation["security"] = [{"apiKey": []}]
        operation["x-alimi-scope"] = scope
        responses["401"] = _problem(
            "no valid API key", {"WWW-Authenticate": header('Bearer realm="alimi"')}
        )
        responses["403"] = _problem("the key lacks the scope")
    if post:
        parameters.append(
            {
                "name": idempotency.HEADER,
                "in": "header",
                "required": False,
                "schema": {"type": "string", "pattern": idempotency.VALID.pattern},
            }
        )
        responses["400"] = _problem(
            "malformed request (JSON not well formed, or nested more than "
            f"{MAX_JSON_DEPTH} levels deep), or a malformed Idempotency-Key"
        )
        responses["409"] = _problem("a request with this Idempotency-Key is still running")
        # The idempotency check reads any POST's body, so any POST can be too large.
        responses["413"] = _problem("the body is too large")
        responses["422"] = _problem(
            "invalid request: errors name each field; or the Idempotency-Key was used"
            f" before for a different request (type {idempotency.REUSED})"
        )
    parameters.extend(op.parameters)
    if parameters:
        operation["parameters"] = parameters
    if op.body is not None:
        operation["requestBody"] = _body(op, op.body, schemas)
        # alimi.problems.read_json: only the media types the request body lists are read.
        also = " or NDJSON" if op.body_is_list else ""
        responses["415"] = _problem(
            f"the Content-Type is missing, or not application/json (in UTF-8){also}"
        )
    if op.body_types:
        content = {media: {"schema": schema} for media, schema in op.body_types.items()}
        operation["requestBody"] = {"required": True, "description": DEPTH, "content": content}
    for status, description in op.extra.items():
        responses[str(status)] = _problem(description)
    for status, answer in op.responses.items():
        responses[str(status)] = answer
    for refusal in (*op.refusals, *((REUSED_KEY,) if post else ())):
        responses[str(refusal.status)].setdefault(REFUSALS, []).append(refusal.described())
    return operation


def _closed(schema: Any) -> None:
    """Objects whose keys follow a pattern take no other key (pydantic's dict[Pattern, X]
    validates so, but its JSON Schema leaves additionalProperties open)."""
    if isinstance(schema, dict):
        if "patternProperties" in schema:
            schema.setdefault("additionalProperties", False)
        for value in schema.values():
            _closed(value)
    elif isinstance(schema, list):
        for value in schema:
            _closed(value)


def document(app: web.Application) -> dict[str, Any]:
    """The OpenAPI document of ``app``'s routes; raises if a route is undocumented."""
    schemas: dict[str, Any] = {"Problem": PROBLEM_SCHEMA}
    paths: dict[str, Any] = {}
    for route in app.router.routes():
        if route.method == "HEAD":
            continue
        path = route.resource.canonical if route.resource else ""
        op = OPERATIONS.get((route.method, path))
        if op is None:
            raise RuntimeError(f"route {route.method} {path} has no OpenAPI operation")
        paths.setdefault(path, {})[route.method.lower()] = _operation(route, op, schemas)
    for schema in schemas.values():
        _closed(schema)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Alimi intake API",
            "version": "1",
            "description": "Incidents, notices and the people they reach. Errors are RFC 9457 "
            f"problem documents. {DEPTH}.",
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer"}},
        },
    }
