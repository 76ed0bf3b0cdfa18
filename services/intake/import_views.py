"""HTTP views of streamed uploads: subject imports and lists of people.

Bodies are read as they arrive (``request.content``), never whole, so these
routes take files of millions of rows in constant memory. aiohttp's
``client_max_size`` (``ALIMI_MAX_BODY_MB``) bounds only bodies read whole;
these have their own cap, ``ALIMI_IMPORT_MAX_MB``: a ``Content-Length`` over it
is refused before anything is read, a streamed body once it passes it.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

from aiohttp import web

from alimi import ids, problems
from alimi.problems import ProblemError
from alimi_intake import (
    audit,
    idempotency,
    importer,
    job_views,
    jobs,
    lists,
    rows,
    upload_errors,
)
from alimi_intake.access import KEY, requires
from alimi_intake.context import CONTEXT
from alimi_intake.jobs import Progress
from alimi_intake.rows import BodyTooLarge, HeaderError, Row
from alimi_intake.upload_errors import NothingToImport

routes = web.RouteTableDef()

MB = 1024 * 1024


def _lines(request: web.Request) -> AsyncIterator[rows.Line]:
    limit = request.app[CONTEXT].settings.import_max_mb * MB
    if request.content_length is not None and request.content_length > limit:
        raise _too_large(request)
    return rows.lines(idempotency.body_chunks(request), max_bytes=limit)


def _too_large(request: web.Request, *, written: str = "") -> ProblemError:
    limit = request.app[CONTEXT].settings.import_max_mb
    return ProblemError(
        413,
        "Payload Too Large",
        f"the body is over {limit} MB (ALIMI_IMPORT_MAX_MB); split the file.{written}",
    )


def _rows(
    request: web.Request,
    *,
    accepted: str,
    header: Callable[[str | None], list[str]],
    bare: str | None = None,
) -> tuple[str, AsyncIterator[Row]]:
    """(format, rows) of a CSV or NDJSON body; 415 for any other type or charset."""
    charset = (request.charset or "utf-8").lower()
    if request.content_type in rows.CSV_TYPES:
        encoding = rows.CSV_CHARSETS.get(charset)
        if encoding is None:
            raise problems.unsupported_media_type(request, accepted)
        return "csv", rows.csv_rows(_lines(request), encoding=encoding, header=header)
    if request.content_type in rows.NDJSON_TYPES:
        if rows.CSV_CHARSETS.get(charset) != "utf-8":
            raise problems.unsupported_media_type(request, accepted)
        return "ndjson", rows.ndjson_rows(_lines(request), bare=bare)
    raise problems.unsupported_media_type(request, accepted)


def _empty(what: str) -> ProblemError:
    return ProblemError(
        422,
        "Invalid request",
        f"no {what} in the body",
        errors=[{"field": "body", "message": "empty"}],
    )


def _bad_header(exc: HeaderError) -> ProblemError:
    return ProblemError(
        422,
        "Invalid CSV header",
        "; ".join(e.message for e in exc.errors) + "; nothing was imported",
        errors=[e.as_dict() for e in exc.errors],
    )


@routes.post("/v1/subjects/import")
@requires("subjects:write")
@idempotency.streamed
async def import_subjects_file(request: web.Request) -> web.Response:
    """Read and check the file here; the job applies it (:mod:`alimi_intake.importer`)."""
    source, body = _rows(
        request, accepted="text/csv or application/x-ndjson", header=rows.subject_header
    )
    ctx = request.app[CONTEXT]
    key = request[KEY]
    import_id = ids.new_id(jobs.IMPORT.prefix)
    try:
        staged = await importer.stage(
            ctx.store,
            rows=body,
            import_id=import_id,
            source=source,
            hash_key=ctx.settings.phone_hash_key.get_secret_value().encode(),
            keyring=ctx.settings.phone_keyring,
        )
    except HeaderError as exc:
        raise _bad_header(exc) from None
    except BodyTooLarge:
        raise _too_large(request, written=" Nothing was imported.") from None
    except NothingToImport:
        raise _empty("rows") from None

    async def work(progress: Progress) -> dict[str, Any]:
        return await importer.apply(ctx.store, staged, progress)

    async def audited(result: dict[str, Any]) -> None:
        counts = {k: result[k] for k in ("rows", "imported", "inserted", "updated", "rejected")}
        await audit.record(ctx.store, key, "subjects.imported", import_id, counts)

    return await job_views.start(
        request,
        jobs.IMPORT,
        target=import_id,
        work=work,
        then=audited,
        total=staged.staged,
        job_id=import_id,
    )


@routes.get("/v1/imports/{import_id}/errors/{page}")
@requires("subjects:write")
async def get_import_errors(request: web.Request) -> web.Response:
    page = request.match_info["page"]
    found = None
    if page.isascii() and page.isdigit() and len(page) <= 7:
        store = request.app[CONTEXT].store
        found = await upload_errors.find_error_page(
            store, request.match_info["import_id"], int(page)
        )
    if found is None:
        raise ProblemError(404, "Not Found", "no such import, or no such page of its errors")
    return web.json_response(found)


async def _json_ids(request: web.Request) -> AsyncIterator[Row]:
    """A JSON array of external ids, read whole (at most ALIMI_MAX_BODY_MB), as rows."""
    limit = request.app[CONTEXT].settings.max_body_mb * MB
    raw = bytearray()
    async for chunk in idempotency.body_chunks(request):
        raw += chunk
        if len(raw) > limit:
            raise ProblemError(413, "Payload Too Large", "send a list this long as NDJSON or CSV")
    try:
        body = problems.loads(raw) if raw else None
    except problems.TooDeep as exc:
        raise problems.nested_too_deeply(exc) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ProblemError(400, "Malformed JSON", f"body is not valid JSON: {exc}") from None
    if not isinstance(body, list) or not all(isinstance(v, str) for v in body):
        raise ProblemError(
            422,
            "Invalid request",
            "expected a JSON array of external ids (strings)",
            errors=[{"field": "body", "message": "expected an array of strings"}],
        )
    for number, value in enumerate(body, start=1):
        yield Row(number, {"external_id": value})


@routes.post("/v1/lists")
@requires("subjects:write")
@idempotency.streamed
async def create_list(request: web.Request) -> web.Response:
    accepted = "text/csv, application/x-ndjson or application/json"
    if request.content_type == problems.JSON:
        source, body = "json", _json_ids(request)
    else:
        source, body = _rows(
            request, accepted=accepted, header=rows.list_header, bare="external_id"
        )
    ctx = request.app[CONTEXT]
    list_id = ids.new_id("lst")
    try:
        result = await lists.create_list(
            ctx.store, rows=body, list_id=list_id, source=source, key=request[KEY]
        )
    except HeaderError as exc:
        raise _bad_header(exc) from None
    except BodyTooLarge:
        raise _too_large(request, written=" Nothing was kept.") from None
    except NothingToImport:
        raise _empty("external ids") from None
    counts = {k: result[k] for k in ("rows", "members", "unknown_ids_count", "rejected")}
    await audit.record(ctx.store, request[KEY], "list.created", list_id, counts)
    return web.json_response(result, status=201, headers={"Location": f"/v1/lists/{list_id}"})


@routes.get("/v1/lists/{list_id}")
@requires("incidents:read")
async def get_list(request: web.Request) -> web.Response:
    found = await lists.find_list(request.app[CONTEXT].store, request.match_info["list_id"])
    if found is None:
        raise ProblemError(404, "Not Found", "no list with that id")
    return web.json_response(found)
