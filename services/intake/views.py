"""HTTP views of the intake API: parse and validate, call the service, answer."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from alimi import api_keys, problems
from alimi.audience import AudienceSpec
from alimi.problems import ProblemError
from alimi.store import Store
from alimi_intake import (
    audit,
    incident_list,
    job_views,
    jobs,
    lists,
    notices,
    openapi,
    repository,
    service,
)
from alimi_intake.access import KEY, public, requires
from alimi_intake.context import CONTEXT
from alimi_intake.jobs import Progress
from alimi_intake.models import (
    MAX_SUBJECTS_PER_REQUEST,
    IncidentIn,
    KeyIn,
    SubjectIn,
    UpdateIn,
    compliance_problems,
    notice_template_problems,
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
                rows.append(problems.loads(line))
            except problems.TooDeep as exc:
                raise problems.nested_too_deeply(exc, field=f"line {number}") from None
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise ProblemError(
                    400, "Malformed NDJSON", f"line {number} is not valid JSON: {exc}"
                ) from None
        return rows
    body = await problems.read_json(request, accepted="application/json or application/x-ndjson")
    if not isinstance(body, list):
        raise ProblemError(
            422,
            "Invalid request",
            "expected a JSON array of subjects (or NDJSON)",
            errors=[{"field": "body", "message": "expected an array"}],
        )
    return body


@routes.post("/v1/subjects")
@requires("subjects:write")
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
        keyring=ctx.settings.phone_keyring,
    )
    await audit.record(ctx.store, request[KEY], "subjects.imported", "subjects", result)
    return web.json_response(result, status=200)


async def _check_list(store: Store, audience: AudienceSpec) -> None:
    """422 if the audience names a list that does not exist or is not complete."""
    unusable = await lists.audience_problems(store, audience)
    if unusable:
        raise ProblemError(
            422, "Invalid audience", "; ".join(e["message"] for e in unusable), errors=unusable
        )


@routes.post("/v1/incidents")
@requires("incidents:write")
async def create_incident(request: web.Request) -> web.Response:
    body = await problems.read_json(request)
    try:
        incident = IncidentIn.model_validate(body)
    except ValidationError as exc:
        raise problems.from_validation_error(exc) from None
    required = compliance_problems(incident)
    if required:
        raise ProblemError(
            422,
            "Notice misses legally required items",
            "; ".join(f"{e['field']}: {e['message']}" for e in required),
            errors=required,
        )
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
    await _check_list(ctx.store, incident.audience)
    created = await service.create_incident(
        ctx.store, request=incident, public_base_url=ctx.settings.public_base_url, key=request[KEY]
    )
    location = f"/v1/incidents/{created['incident_id']}"
    return web.json_response(created, status=201, headers={"Location": location})


@routes.post("/v1/incidents/{incident_id}/notices")
@requires("incidents:write")
async def post_update(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    incident = await repository.find_incident(ctx.store, request.match_info["incident_id"])
    if incident is None:
        raise ProblemError(404, "Not Found", "no incident with that id")
    body = await problems.read_json(request)
    try:
        update = UpdateIn.model_validate(body)
    except ValidationError as exc:
        raise problems.from_validation_error(exc) from None
    unfillable = notice_template_problems(
        update.notice, title=incident["title"], contact=incident.get("contact", "")
    )
    if unfillable:
        raise ProblemError(
            422,
            "Template cannot be filled",
            "; ".join(e["message"] for e in unfillable),
            errors=unfillable,
        )
    if update.audience is not None:
        await _check_list(ctx.store, update.audience)
    created = await service.create_update(
        ctx.store, incident=incident, request=update, key=request[KEY]
    )
    return web.json_response(created, status=201)


@routes.get("/v1/incidents")
@requires("incidents:read")
async def get_incidents(request: web.Request) -> web.Response:
    limit, cursor = incident_list.page_request(request)
    ctx = request.app[CONTEXT]
    listed = await incident_list.list_incidents(
        ctx.store, limit=limit, cursor=cursor, now=datetime.now(UTC)
    )
    return web.json_response(listed)


@routes.get("/v1/incidents/{incident_id}")
@requires("incidents:read")
async def get_incident(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    found = await service.get_incident(ctx.store, incident_id=request.match_info["incident_id"])
    if found is None:
        raise ProblemError(404, "Not Found", "no incident with that id")
    return web.json_response(found)


def _notice_state(notice: dict[str, Any]) -> dict[str, Any]:
    return {
        "notice_id": notice["_id"],
        "incident_id": notice["incident_id"],
        "state": notice["state"],
    }


@routes.post("/v1/notices/{notice_id}/approve")
@requires("notices:approve")
async def approve_notice(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    notice = await notices.approve(ctx.store, request[KEY], request.match_info["notice_id"])
    ctx.outbox_relay.wake()
    return web.json_response(_notice_state(notice))


@routes.post("/v1/notices/{notice_id}/preview")
@requires("incidents:read")
async def preview_notice(request: web.Request) -> web.Response:
    """202: a job counts the audience (404 at once for an unknown notice)."""
    ctx = request.app[CONTEXT]
    notice_id = request.match_info["notice_id"]
    await notices.find(ctx.store, notice_id)

    async def work(progress: Progress) -> dict[str, Any]:
        return await notices.preview(ctx.store, notice_id, counted=progress.report)

    return await job_views.start(request, jobs.PREVIEW, target=notice_id, work=work)


@routes.post("/v1/notices/{notice_id}/halt")
@requires("notices:approve")
async def halt_notice(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    notice = await notices.halt(ctx.store, request[KEY], request.match_info["notice_id"])
    return web.json_response(_notice_state(notice))


@routes.post("/v1/notices/{notice_id}/resume")
@requires("notices:approve")
async def resume_notice(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    notice = await notices.resume(ctx.store, request[KEY], request.match_info["notice_id"])
    ctx.outbox_relay.wake()
    return web.json_response(_notice_state(notice))


@routes.post("/v1/keys")
@requires("admin")
async def create_key(request: web.Request) -> web.Response:
    body = await problems.read_json(request)
    try:
        wanted = KeyIn.model_validate(body)
    except ValidationError as exc:
        raise problems.from_validation_error(exc) from None
    ctx = request.app[CONTEXT]
    token, key = await api_keys.create(
        ctx.store,
        name=wanted.name,
        scopes=list(wanted.scopes),
        allow_self_approval=wanted.allow_self_approval,
    )
    await audit.record(
        ctx.store, request[KEY], "key.created", key.key_id, {"scopes": sorted(key.scopes)}
    )
    return web.json_response(
        {"key_id": key.key_id, "api_key": token, "name": key.name, "scopes": sorted(key.scopes)},
        status=201,
    )


@routes.delete("/v1/keys/{key_id}")
@requires("admin")
async def revoke_key(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    key_id = request.match_info["key_id"]
    if not await api_keys.revoke(ctx.store, key_id):
        raise ProblemError(404, "Not Found", "no active key with that id")
    await audit.record(ctx.store, request[KEY], "key.revoked", key_id)
    return web.Response(status=204)


@routes.get("/openapi.json")
@public
async def openapi_document(request: web.Request) -> web.Response:
    return web.json_response(openapi.document(request.app))
