"""The OpenAPI 3.1 document of the intake API, built from the models that validate requests.

Request bodies come from the pydantic models the views validate with
(``model_json_schema``), so the document cannot drift from the checks. Every
route has an :class:`Operation` here (a test compares them with the route
table); the statuses each can answer are derived from what the route does:
a protected route can say 401 and 403, a body can be malformed (400), too
large (413) or invalid (422), a path id can be unknown (404).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.web_urldispatcher import AbstractRoute
from pydantic import BaseModel

from alimi_intake.access import PUBLIC, access_of
from alimi_intake.models import IncidentIn, KeyIn, SubjectIn

PROBLEM = "application/problem+json"
OBJECT: dict[str, Any] = {"type": "object"}
REF = "#/components/schemas/{model}"
PATH_PARAMETER: dict[str, Any] = {"type": "string", "minLength": 1}


@dataclass(frozen=True)
class Operation:
    summary: str
    ok: int = 200
    body: type[BaseModel] | None = None
    body_is_list: bool = False  # a JSON array of ``body`` (or NDJSON)
    extra: dict[int, str] = field(default_factory=dict)  # more statuses it may answer
    ok_type: str = "application/json"


OPERATIONS: dict[tuple[str, str], Operation] = {
    ("POST", "/v1/subjects"): Operation(
        "Import people into the subject directory (upsert by external_id)",
        body=SubjectIn,
        body_is_list=True,
    ),
    ("POST", "/v1/incidents"): Operation(
        "Create an incident and its first notice (pending approval)", ok=201, body=IncidentIn
    ),
    ("GET", "/v1/incidents/{incident_id}"): Operation(
        "An incident: its deadline, notices and receipt counts", extra={404: "no such incident"}
    ),
    ("GET", "/v1/notices/{notice_id}/preview"): Operation(
        "Who would get what: audience per channel and each locale's message"
    ),
    ("POST", "/v1/notices/{notice_id}/approve"): Operation(
        "Approve a notice (a second key: four-eyes)", extra={409: "not pending approval"}
    ),
    ("POST", "/v1/notices/{notice_id}/halt"): Operation(
        "Stop a notice that is being sent", extra={409: "not approved or sending"}
    ),
    ("POST", "/v1/notices/{notice_id}/resume"): Operation(
        "Send a halted notice to everyone not yet told", extra={409: "not halted"}
    ),
    ("POST", "/v1/notices/{notice_id}/dead-letters/replay"): Operation(
        "Put a notice's dead-lettered deliveries back on their channels"
    ),
    ("POST", "/v1/incidents/{incident_id}/purge-contact-data"): Operation(
        "Erase the contact data of an incident's people after the retention period",
        extra={409: "the retention period has not passed"},
    ),
    ("POST", "/v1/keys"): Operation("Create an API key (shown once)", ok=201, body=KeyIn),
    ("DELETE", "/v1/keys/{key_id}"): Operation("Revoke an API key", ok=204),
    ("GET", "/s/{public_id}"): Operation(
        "The public status page of an incident (HTML)",
        ok_type="text/html",
        extra={304: "not modified"},
    ),
    ("GET", "/openapi.json"): Operation("This document"),
}


def _problem(description: str) -> dict[str, Any]:
    return {"description": description, "content": {PROBLEM: {"schema": OBJECT}}}


def _operation(route: AbstractRoute, op: Operation, schemas: dict[str, Any]) -> dict[str, Any]:
    path = route.resource.canonical if route.resource else ""
    scope = access_of(route.handler)
    responses: dict[str, Any] = {}
    if op.ok == 204:
        responses["204"] = {"description": "done"}
    else:
        responses[str(op.ok)] = {
            "description": "success",
            "content": {
                op.ok_type: {"schema": {"type": "string"} if op.ok_type == "text/html" else OBJECT}
            },
        }
    operation: dict[str, Any] = {
        "summary": op.summary,
        "operationId": route.handler.__name__,
        "responses": responses,
    }
    params = [part[1:-1] for part in path.split("/") if part.startswith("{")]
    if params:
        operation["parameters"] = [
            {
                "name": p,
                "in": "path",
                "required": True,
                "schema": {"type": "string", "minLength": 1},
            }
            for p in params
        ]
        responses["404"] = _problem("not found")
    if scope != PUBLIC:
        operation["security"] = [{"apiKey": []}]
        operation["x-alimi-scope"] = scope
        responses["401"] = _problem("no valid API key")
        responses["403"] = _problem("the key lacks the scope")
    if route.method == "POST":
        operation["parameters"] = [
            *operation.get("parameters", []),
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": False,
                "schema": {"type": "string", "pattern": "^[!-~]{1,200}$"},
            },
        ]
        responses["400"] = _problem("malformed request")
        responses["422"] = _problem("invalid request: errors name each field")
        responses["409"] = _problem("conflict")
    if op.body is not None:
        name = op.body.__name__
        schemas.update(
            op.body.model_json_schema(ref_template="#/components/schemas/{model}").pop("$defs", {})
        )
        schemas[name] = {
            k: v
            for k, v in op.body.model_json_schema(
                ref_template="#/components/schemas/{model}"
            ).items()
            if k != "$defs"
        }
        ref = {"$ref": f"#/components/schemas/{name}"}
        schema = {"type": "array", "items": ref, "minItems": 1} if op.body_is_list else ref
        content: dict[str, Any] = {"application/json": {"schema": schema}}
        if op.body_is_list:
            content["application/x-ndjson"] = {"schema": {"type": "string"}}
        operation["requestBody"] = {"required": True, "content": content}
        responses["413"] = _problem("the body is too large")
    for status, description in op.extra.items():
        responses[str(status)] = (
            {"description": description} if status < 400 else _problem(description)
        )
    return operation


def document(app: web.Application) -> dict[str, Any]:
    """The OpenAPI document of ``app``'s routes; raises if a route is undocumented."""
    schemas: dict[str, Any] = {}
    paths: dict[str, Any] = {}
    for route in app.router.routes():
        if route.method == "HEAD":
            continue
        path = route.resource.canonical if route.resource else ""
        op = OPERATIONS.get((route.method, path))
        if op is None:
            raise RuntimeError(f"route {route.method} {path} has no OpenAPI operation")
        paths.setdefault(path, {})[route.method.lower()] = _operation(route, op, schemas)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Alimi intake API",
            "version": "1",
            "description": "Incidents, notices and the people they reach. Errors are RFC 9457 "
            "problem documents.",
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer"}},
        },
    }
