"""What each route of the intake API is, for its OpenAPI document: the :data:`OPERATIONS`.

One :class:`Operation` per route (a test compares them with the route
table): its summary, its body and answer; the statuses every route of its
kind can answer are derived in :mod:`alimi_intake.openapi`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from alimi_intake import console, idempotency, incident_list, jobs, rows, status_page
from alimi_intake.models import IncidentIn, KeyIn, SubjectIn, UpdateIn

JSON = "application/json"
NDJSON = "application/x-ndjson"
CSV = "text/csv"
HTML = "text/html"
PROBLEM = "application/problem+json"
OBJECT: dict[str, Any] = {"type": "object"}
TEXT: dict[str, Any] = {"type": "string"}

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
    **{
        kind.param: {"type": "string", "pattern": f"^{kind.prefix}_[0-9a-f]{{20}}$"}
        for kind in jobs.KINDS.values()
    },
}


def header(description: str, *, required: bool = True) -> dict[str, Any]:
    return {"description": description, "required": required, "schema": TEXT}


STATUS_PAGE_HEADERS = {
    "ETag": header("hash of the page"),
    "Cache-Control": header("public, max-age=60"),
    "Content-Language": header("the page's language: ko or en"),
    "Vary": header("Accept-Language"),
    "Content-Security-Policy": header("no script; the one inline style by its hash"),
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


# A job (alimi_intake.jobs): the 202 answer of a POST that starts long work, and its URL's.
WHEN: dict[str, Any] = {"type": "string", "format": "date-time"}
JOB: dict[str, Any] = {
    "type": "object",
    "description": "long work and where it stands: result once succeeded, problem once failed",
    "required": [
        "job_id",
        "kind",
        "url",
        "state",
        "progress",
        "result",
        "problem",
        "created_at",
        "updated_at",
        "finished_at",
    ],
    "properties": {
        "job_id": TEXT,
        "kind": {"type": "string", "enum": sorted(jobs.KINDS)},
        "url": {"type": "string", "description": "where to read the job (also Location)"},
        "state": {"type": "string", "enum": [*jobs.UNFINISHED, jobs.SUCCEEDED, jobs.FAILED]},
        "target": {"type": ["string", "null"]},
        "progress": {
            "type": "object",
            "required": ["done", "total"],
            "properties": {
                "done": {"type": "integer", "minimum": 0},
                "total": {"type": ["integer", "null"], "minimum": 0},
            },
        },
        "result": {"type": ["object", "null"]},
        "problem": {"anyOf": [{"$ref": "#/components/schemas/Problem"}, {"type": "null"}]},
        "created_at": WHEN,
        "updated_at": WHEN,
        "finished_at": {**WHEN, "type": ["string", "null"]},
    },
}


def _starts_job(summary: str, **more: Any) -> Operation:
    """A POST answered 202: the job, its URL in Location."""
    return Operation(
        summary,
        ok=202,
        ok_schema=JOB,
        ok_headers={"Location": header("the job's URL: read it until the job is finished")},
        **more,
    )


JOB_OPERATIONS: dict[tuple[str, str], Operation] = {
    ("GET", kind.path): Operation(
        f"A {kind.name} job: its state and progress, then its result or problem",
        ok_schema=JOB,
    )
    for kind in jobs.KINDS.values()
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
        ok_headers={"Location": header("/v1/incidents/{incident_id}")},
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
    ("POST", "/v1/notices/{notice_id}/preview"): _starts_job(
        "Who would get what: audience per channel and each locale's message (a job)"
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
    ("POST", "/v1/notices/{notice_id}/dead-letters/replay"): _starts_job(
        "Put a notice's dead-lettered deliveries back on their channels (a job)",
        extra={409: "a replay or discard of this notice's dead letters is running"},
    ),
    ("POST", "/v1/incidents/{incident_id}/purge-contact-data"): _starts_job(
        "Erase the contact data of an incident's people after the retention period (a job)",
        extra={409: "the retention period has not passed, or a purge is running"},
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
                "headers": {"Cache-Control": header("no-store")},
                "content": {HTML: {"schema": TEXT}},
            },
        },
    ),
    ("POST", "/v1/subjects/import"): _starts_job(
        "Import a file of people (CSV or NDJSON, streamed and checked; a job applies it:"
        " per-row errors, upsert by external_id)",
        body_types={CSV: rows.SUBJECTS_CSV_SCHEMA, NDJSON: rows.NDJSON_SCHEMA},
        extra={415: "not CSV or NDJSON, or a charset other than UTF-8 (or EUC-KR for CSV)"},
    ),
    ("GET", "/v1/imports/{import_id}/errors/{page}"): Operation(
        "One page (1,000) of a subjects import's rejected rows"
    ),
    ("POST", "/v1/lists"): Operation(
        "Upload a list of people (external ids) to use as an audience",
        ok=201,
        ok_schema=_created(list_id="list_id"),
        ok_headers={"Location": header("/v1/lists/{list_id}")},
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
        ok_headers={"Content-Security-Policy": header("this server's script and requests only")},
    ),
    ("GET", console.SCRIPT_PATH): Operation(
        "The operator console's script", ok_type="text/javascript", ok_schema=TEXT
    ),
    ("GET", "/openapi.json"): Operation("This document"),
    **JOB_OPERATIONS,
}
