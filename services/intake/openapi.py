"""The OpenAPI 3.1 document of the intake API, built from the models that validate requests.

Request bodies come from the pydantic models the views validate with
(``model_json_schema``), so the document cannot drift from the checks. Every
route has an :class:`Operation` here (a test compares them with the route
table); the statuses each can answer are derived from what the route does:
a protected route can say 401 and 403, a POST can carry a malformed or
reused ``Idempotency-Key`` (400, 422, 409) and a body that is malformed (400),
too large (413), of a media type it does not read (415) or invalid (422), a
path id can be unknown (404); any request can carry a header or a URL too long
(431, 414). Every error
is a problem document (RFC 9457), except the status page's 404, which people's
browsers read.

A request the document allows is answered 2xx, unless it meets a refusal JSON
Schema cannot express: what was done before (an Idempotency-Key used for
another request, a cursor naming no incident). Those are listed under their
status as ``x-alimi-refusals``, by the problem ``type`` the answer carries,
so a client (and the schemathesis test) can tell them from a broken rule.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.web_urldispatcher import AbstractRoute
from pydantic import BaseModel

from alimi.problems import MAX_HEADER_BYTES, MAX_JSON_DEPTH, MAX_URL_BYTES
from alimi_intake import console, idempotency, incident_list, rows, status_page
from alimi_intake.access import PUBLIC, access_of
from alimi_intake.models import IncidentIn, KeyIn, SubjectIn, UpdateIn

JSON = "application/json"
NDJSON = "application/x-ndjson"
CSV = "text/csv"
HTML = "text/html"
PROBLEM = "application/problem+json"
OBJECT: dict[str, Any] = {"type": "object"}
TEXT: dict[str, Any] = {"type": "string"}
DEPTH = (
    f"JSON (a body, or an NDJSON line) nests arrays and objects at most {MAX_JSON_DEPTH} levels"
    " deep: deeper is refused (400, or a rejected row) before it is parsed"
)

# The ids in paths: alimi.ids.new_id (a prefix and 80 random bits in hex), the key
# id of alimi.api_keys.TOKEN, the status page's public id. A value that does not
# match names nothing: 404, as for an unknown one.
PATH_PARAMETERS: dict[str, dict[str, Any]] = {
    "incident_id": {"type": "string", "pattern": "^inc_[0-9a-f]{20}$"},
    "notice_id": {"type": "string", "pattern": "^ntc_[0-9a-f]{20}$"},
    "key_id": {"type": "string", "pattern": "^[a-z0-9]{4,40}$"},
    "public_id": {"type": "string", "pattern": f"^{status_page.PUBLIC_ID.pattern}$"},
    "import_id": {"type": "string", "pattern": "^imp_[0-9a-f]{20}$"},
    "list_id": {"type": "string", "pattern": "^lst_[0-9a-f]{20}$"},
    "page": {"type": "string", "pattern": "^[1-9][0-9]{0,6}$"},
}

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


def _header(description: str, *, required: bool = True) -> dict[str, Any]:
    return {"description": description, "required": required, "schema": TEXT}


STATUS_PAGE_HEADERS = {
    "ETag": _header("hash of the page"),
    "Cache-Control": _header("public, max-age=60"),
    "Content-Language": _header("the page's language: ko or en"),
    "Vary": _header("Accept-Language"),
    "Content-Security-Policy": _header("no script; the one inline style by its hash"),
}


@dataclass(frozen=True)
class Refusal:
    """A well-formed request refused for what was done before, not for its form: JSON
    Schema cannot say it, so the document names it (its RFC 9457 problem type)."""

    status: int
    type_uri: str
    when: str

    def described(self) -> dict[str, str]:
        return {"type": self.type_uri, "when": self.when}


REFUSALS = "x-alimi-refusals"
REUSED_KEY = Refusal(
    422, idempotency.REUSED, "the Idempotency-Key was used before for a different request"
)


@dataclass(frozen=True)
class Operation:
    summary: str
    ok: int = 200
    body: type[BaseModel] | None = None
    body_is_list: bool = False  # a JSON array of ``body`` (or NDJSON)
    extra: dict[int, str] = field(default_factory=dict)  # more problem statuses it may answer
    ok_type: str = JSON
    ok_schema: dict[str, Any] = field(default_factory=lambda: OBJECT)
    ok_headers: dict[str, Any] = field(default_factory=dict)
    parameters: tuple[dict[str, Any], ...] = ()  # query and header parameters
    responses: dict[int, dict[str, Any]] = field(default_factory=dict)  # replace derived ones
    # A body that is a file streamed as text: media type -> its schema (instead of ``body``).
    body_types: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Refusals a request this document allows can still meet, for what the store holds:
    # (status, problem type, when). Listed under the status as x-alimi-refusals.
    refusals: tuple[Refusal, ...] = ()


def _created(**ids: str) -> dict[str, Any]:
    """A 201 answer naming what was created, its ids as the paths take them."""
    properties = {name: PATH_PARAMETERS[param] for name, param in ids.items()}
    return {"type": "object", "required": sorted(properties), "properties": properties}


# Where an incident's 72-hour legal deadline stands (alimi.compliance.Deadline.fields).
DEADLINE: dict[str, Any] = {
    "deadline": {"type": "string", "format": "date-time"},
    "seconds_left": {"type": "integer", "description": "negative once the deadline passed"},
    "overdue": {"type": "boolean"},
    "overdue_by_s": {"type": "integer", "minimum": 0},
    "deadline_note": {"type": "string", "description": "where the deadline stands, in words"},
}


def _incident_created() -> dict[str, Any]:
    created = _created(incident_id="incident_id", notice_id="notice_id")
    return {
        **created,
        "required": sorted([*created["required"], *DEADLINE]),
        "properties": {**created["properties"], **DEADLINE},
    }


OPERATIONS: dict[tuple[str, str], Operation] = {
    ("POST", "/v1/subjects"): Operation(
        "Import people into the subject directory (upsert by external_id)",
        body=SubjectIn,
        body_is_list=True,
    ),
    ("POST", "/v1/incidents"): Operation(
        "Create an incident and its first notice (pending approval)",
        ok=201,
        body=IncidentIn,
        ok_schema=_incident_created(),
        ok_headers={"Location": _header("/v1/incidents/{incident_id}")},
    ),
    ("POST", "/v1/incidents/{incident_id}/notices"): Operation(
        "Post a progress notice (pending approval) and optionally the incident's new status,"
        " which applies when a second key approves the notice",
        ok=201,
        body=UpdateIn,
    ),
    ("GET", "/v1/incidents"): Operation(
        "The incidents, newest first, a page at a time (next_cursor: the next page)",
        ok_schema=incident_list.LIST_SCHEMA,
        parameters=incident_list.LIST_PARAMETERS,
        extra={422: "limit out of range, or a cursor that names no incident"},
        refusals=(Refusal(422, incident_list.UNKNOWN_CURSOR, "the cursor names no incident"),),
    ),
    ("GET", "/v1/incidents/{incident_id}"): Operation(
        "An incident: its deadline, notices and receipt counts"
    ),
    ("GET", "/v1/notices/{notice_id}/preview"): Operation(
        "Who would get what: audience per channel and each locale's message"
    ),
    ("POST", "/v1/notices/{notice_id}/approve"): Operation(
        "Approve a notice (a second key: four-eyes; 403 for the key that created it)",
        extra={409: "not pending approval"},
    ),
    ("POST", "/v1/notices/{notice_id}/halt"): Operation(
        "Stop a notice that is being sent", extra={409: "not approved or sending"}
    ),
    ("POST", "/v1/notices/{notice_id}/resume"): Operation(
        "Send a halted notice to everyone not yet told", extra={409: "not halted"}
    ),
    ("GET", "/v1/notices/{notice_id}/dead-letters"): Operation(
        "A notice's dead letters: people given up on, per channel, and the last errors"
    ),
    ("POST", "/v1/notices/{notice_id}/dead-letters/replay"): Operation(
        "Put a notice's dead-lettered deliveries back on their channels"
    ),
    ("POST", "/v1/incidents/{incident_id}/purge-contact-data"): Operation(
        "Erase the contact data of an incident's people after the retention period",
        extra={409: "the retention period has not passed"},
    ),
    ("POST", "/v1/keys"): Operation(
        "Create an API key (shown once)",
        ok=201,
        body=KeyIn,
        ok_schema=_created(key_id="key_id"),
    ),
    ("DELETE", "/v1/keys/{key_id}"): Operation("Revoke an API key", ok=204),
    ("GET", "/s/{public_id}"): Operation(
        "The public status page of an incident (HTML, for people's browsers; no key)",
        ok_type=HTML,
        ok_schema=TEXT,
        ok_headers=STATUS_PAGE_HEADERS,
        parameters=(
            {
                "name": "lang",
                "in": "query",
                "required": False,
                "description": "ko or en; any other value: the Accept-Language header decides",
                "schema": TEXT,
            },
            {"name": "Accept-Language", "in": "header", "required": False, "schema": TEXT},
            {"name": "If-None-Match", "in": "header", "required": False, "schema": TEXT},
        ),
        responses={
            304: {"description": "not modified: If-None-Match names the ETag"},
            404: {
                "description": "no incident has this public id (one page for every unknown id)",
                "headers": {"Cache-Control": _header("no-store")},
                "content": {HTML: {"schema": TEXT}},
            },
        },
    ),
    ("POST", "/v1/subjects/import"): Operation(
        "Import a file of people (CSV or NDJSON, streamed; per-row errors; upsert by external_id)",
        body_types={CSV: rows.SUBJECTS_CSV_SCHEMA, NDJSON: rows.NDJSON_SCHEMA},
        extra={415: "not CSV or NDJSON, or a charset other than UTF-8 (or EUC-KR for CSV)"},
    ),
    ("GET", "/v1/imports/{import_id}"): Operation("A subjects import: its state and counts"),
    ("GET", "/v1/imports/{import_id}/errors/{page}"): Operation(
        "One page (1,000) of a subjects import's rejected rows"
    ),
    ("POST", "/v1/lists"): Operation(
        "Upload a list of people (external ids) to use as an audience",
        ok=201,
        ok_schema=_created(list_id="list_id"),
        ok_headers={"Location": _header("/v1/lists/{list_id}")},
        body_types={
            CSV: rows.LIST_CSV_SCHEMA,
            NDJSON: rows.NDJSON_SCHEMA,
            JSON: {"type": "array", "items": {"type": "string"}, "minItems": 1},
        },
        extra={415: "not CSV, NDJSON or JSON"},
    ),
    ("GET", "/v1/lists/{list_id}"): Operation("An uploaded list: its state and counts"),
    ("GET", "/console"): Operation(
        "The operator console (HTML; its script calls this API with the key the person enters)",
        ok_type=HTML,
        ok_schema=TEXT,
        ok_headers={"Content-Security-Policy": _header("this server's script and requests only")},
    ),
    ("GET", console.SCRIPT_PATH): Operation(
        "The operator console's script", ok_type="text/javascript", ok_schema=TEXT
    ),
    ("GET", "/openapi.json"): Operation("This document"),
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
        headers[idempotency.REPLAYED] = _header(
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
            "no valid API key", {"WWW-Authenticate": _header('Bearer realm="alimi"')}
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
