"""The incident list, ``GET /v1/incidents``: its query parameters, its page and its rows.

Newest first, ``limit`` at a time; a page's ``next_cursor`` (its last incident's id)
asks for the next. The console and the CLI read it; the schemas are the OpenAPI
document's (``openapi.py``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from aiohttp import web

from alimi import compliance, problems
from alimi.problems import ProblemError
from alimi.store import Store
from alimi_intake import repository

DEFAULT_LIMIT = 20
MAX_LIMIT = 100
INCIDENT_ID = re.compile(r"inc_[0-9a-f]{20}")
# The problem type of a well-formed cursor that names no incident (the OpenAPI document
# lists it among the refusals a request it allows can meet).
UNKNOWN_CURSOR = "urn:alimi:problem:cursor-names-no-incident"
LIMIT = re.compile(r"[0-9]{1,3}")

# The list's answer and query parameters, for the OpenAPI document (openapi.py).
_ID_SCHEMA: dict[str, Any] = {"type": "string", "pattern": f"^{INCIDENT_ID.pattern}$"}
_TIME_SCHEMA: dict[str, Any] = {"type": "string", "format": "date-time"}
LIST_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["incidents", "next_cursor"],
    "properties": {
        "incidents": {
            "type": "array",
            "items": {
                "type": "object",
                "required": [
                    "incident_id",
                    "title",
                    "severity",
                    "status",
                    "created_at",
                    "deadline",
                    "seconds_left",
                    "notices",
                ],
                "properties": {
                    "incident_id": _ID_SCHEMA,
                    "title": {"type": "string"},
                    "severity": {"type": "string"},
                    "status": {"type": "string"},
                    "created_at": _TIME_SCHEMA,
                    "deadline": _TIME_SCHEMA,
                    "seconds_left": {"type": "integer"},
                    "notices": {"type": "integer", "minimum": 0},
                },
            },
        },
        "next_cursor": {"anyOf": [_ID_SCHEMA, {"type": "null"}]},
    },
}
LIST_PARAMETERS: tuple[dict[str, Any], ...] = (
    {
        "name": "limit",
        "in": "query",
        "required": False,
        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
    },
    {
        "name": "cursor",
        "in": "query",
        "required": False,
        "description": "the next_cursor of the page before",
        "schema": _ID_SCHEMA,
    },
)


def incident_summary(incident: Mapping[str, Any], *, notices: int, now: datetime) -> dict[str, Any]:
    """One row of the incident list."""
    deadline = compliance.incident_deadline(incident, now)
    return {
        "incident_id": incident["_id"],
        "title": incident["title"],
        "severity": incident["severity"],
        "status": incident["status"],
        "created_at": incident["created_at"].isoformat(),
        "deadline": deadline.at.isoformat(),
        "seconds_left": deadline.seconds_left,
        "notices": notices,
    }


def page_request(request: web.Request) -> tuple[int, str | None]:
    """``limit`` and ``cursor``, each at most once; 422 naming the bad one."""
    for name in ("limit", "cursor"):
        if len(request.query.getall(name, [])) > 1:
            raise _invalid(name, "given more than once")
    raw = request.query.get("limit")
    if raw is not None and not (LIMIT.fullmatch(raw) and 1 <= int(raw) <= MAX_LIMIT):
        raise _invalid("limit", f"expected a whole number from 1 to {MAX_LIMIT}")
    return (int(raw) if raw is not None else DEFAULT_LIMIT), request.query.get("cursor")


def _invalid(field: str, message: str, *, type_uri: str = problems.BLANK) -> ProblemError:
    return ProblemError(
        422,
        "Invalid request",
        f"{field}: {message}",
        errors=[{"field": field, "message": message}],
        type_uri=type_uri,
    )


async def list_incidents(
    store: Store, *, limit: int, cursor: str | None, now: datetime
) -> dict[str, Any]:
    """A page of incidents, newest first; ``cursor`` is the last id of the page before."""
    after = None
    if cursor is not None:
        if INCIDENT_ID.fullmatch(cursor):
            after = await repository.find_incident(store, cursor)
        if after is None:
            raise _invalid(
                "cursor",
                "names no incident; use the next_cursor of a page",
                type_uri=UNKNOWN_CURSOR,
            )
    found = await repository.incidents_page(store, after=after, limit=limit + 1)
    page = found[:limit]
    counts = await repository.notices_per_incident(store, [i["_id"] for i in page])
    return {
        "incidents": [incident_summary(i, notices=counts.get(i["_id"], 0), now=now) for i in page],
        "next_cursor": page[-1]["_id"] if len(found) > limit else None,
    }
