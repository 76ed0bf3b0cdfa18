"""HTTP views of the intake API: parse and validate, call the service, answer."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from alimi import problems
from alimi.problems import ProblemError
from alimi_intake import dead_letters, service
from alimi_intake.context import CONTEXT
from alimi_intake.models import (
    MAX_SUBJECTS_PER_REQUEST,
    IncidentIn,
    SubjectIn,
    template_problems,
)

routes = web.RouteTableDef()

NDJSON_TYPES = {"application/x-ndjson", "application/ndjson", "application/jsonl"}


async def _subject_rows(request: web.Request) -> list[Any]:
    if request.content_type in NDJSON_TYPES:
        raw = await request.read()
        rows = []
        for number, line in enumerate(raw.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise ProblemError(
                    400, "Malformed NDJSON", f"line {number} is not valid JSON: {exc}"
                ) from None
        return rows
    body = await problems.read_json(request)
    if not isinstance(body, list):
        raise ProblemError(
            422,
            "Invalid request",
            "expected a JSON array of subjects (or NDJSON)",
            errors=[{"field": "body", "message": "expected an array"}],
        )
    return body


@routes.post("/v1/subjects")
async def import_subjects(request: web.Request) -> web.Response:
    rows = await _subject_rows(request)
    if not rows:
        raise ProblemError(
            422,
            "Invalid request",
            "no subjects in the request",
            errors=[{"field": "body", "message": "empty"}],
        )
    if len(rows) > MAX_SUBJECTS_PER_REQUEST:
        raise ProblemError(
            413,
            "Too many subjects",
            f"{len(rows)} subjects; at most {MAX_SUBJECTS_PER_REQUEST} per request",
        )
    subjects: list[SubjectIn] = []
    errors: list[dict[str, Any]] = []
    seen: set[str] = set()
    for i, row in enumerate(rows):
        try:
            subject = SubjectIn.model_validate(row)
        except ValidationError as exc:
            errors.extend(problems.from_validation_error(exc, prefix=f"[{i}]").errors)
            continue
        if subject.external_id in seen:
            errors.append({"field": f"[{i}].external_id", "message": "duplicate in this request"})
        seen.add(subject.external_id)
        subjects.append(subject)
    if errors:
        raise ProblemError(
            422,
            "Invalid subjects",
            f"{len({e['field'].split('.')[0] for e in errors})} of {len(rows)} rows are invalid;"
            " nothing was imported",
            errors=errors[:1000],
        )
    ctx = request.app[CONTEXT]
    result = await service.import_subjects(
        ctx.store,
        subjects=subjects,
        hash_key=ctx.settings.phone_hash_key.get_secret_value().encode(),
    )
    return web.json_response(result, status=200)


@routes.post("/v1/incidents")
async def create_incident(request: web.Request) -> web.Response:
    body = await problems.read_json(request)
    try:
        incident = IncidentIn.model_validate(body)
    except ValidationError as exc:
        raise problems.from_validation_error(exc) from None
    unfillable = template_problems(incident)
    if unfillable:
        raise ProblemError(
            422,
            "Template cannot be filled",
            f"the notice's template {incident.notice.template!r} cannot be filled: "
            + "; ".join(e["message"] for e in unfillable),
            errors=unfillable,
        )
    ctx = request.app[CONTEXT]
    created = await service.create_incident(
        ctx.store, request=incident, public_base_url=ctx.settings.public_base_url
    )
    ctx.outbox_relay.wake()
    location = f"/v1/incidents/{created['incident_id']}"
    return web.json_response(created, status=201, headers={"Location": location})


@routes.get("/v1/incidents/{incident_id}")
async def get_incident(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    found = await service.get_incident(ctx.store, incident_id=request.match_info["incident_id"])
    if found is None:
        raise ProblemError(404, "Not Found", "no incident with that id")
    return web.json_response(found)


@routes.post("/v1/notices/{notice_id}/dead-letters/replay")
async def replay_dead_letters(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    notice_id = request.match_info["notice_id"]
    if await ctx.store.notices.find_one({"_id": notice_id}, {"_id": 1}) is None:
        raise ProblemError(404, "Not Found", "no notice with that id")
    replayed = await dead_letters.replay(ctx.store, ctx.bus, notice_id)
    return web.json_response(
        {
            "notice_id": notice_id,
            "batches": replayed.batches,
            "recipients": replayed.recipients,
            "recipients_by_channel": replayed.channels,
            "more_remain": replayed.more_remain,
        }
    )
