"""Streamed imports: subjects in bulk chunks, and uploaded lists of people.

Both take rows as they are read (:mod:`alimi_intake.rows`) and hold at most
one chunk of them, so a file of millions of rows is imported in constant
memory. Rows that cannot be imported are counted, the first
:data:`ANSWER_ERRORS` errors go into the answer, and (for subjects) every
error up to :data:`MAX_STORED_ERRORS` is kept in ``import_errors``, in pages
of :data:`ERRORS_PER_PAGE`, under the import's id.

A subjects import is idempotent by external id (upserts). When one file names
the same external id twice, the first row is imported and each later one is
refused, naming the first: that is caught by the database, not by
remembering ids (see :func:`alimi_intake.repository.upsert_imported_subjects`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import TypeAdapter, ValidationError

from alimi import problems
from alimi.api_keys import ApiKey
from alimi.audience import AudienceSpec, SubjectId
from alimi.crypto import Keyring
from alimi.store import Store
from alimi_intake import repository
from alimi_intake.models import SubjectIn
from alimi_intake.repository import LAST_IMPORT
from alimi_intake.rows import Row, RowError
from alimi_intake.service import subject_document

CHUNK_ROWS = 1000
ANSWER_ERRORS = 1000
ERRORS_PER_PAGE = 1000
MAX_STORED_ERRORS = 100_000
ANSWER_UNKNOWN_IDS = 1000

_SUBJECT_ID: TypeAdapter[str] = TypeAdapter(SubjectId)


def _now() -> datetime:
    return datetime.now(UTC)


class NothingToImport(Exception):
    """The upload held no row at all (blank lines, or a CSV header alone)."""


@dataclass
class ErrorLog:
    """The errors of one upload: all counted, the first kept for the answer, pages stored."""

    store: Store | None = None  # None: nothing is stored (lists answer with the first only)
    import_id: str = ""
    count: int = 0
    first: list[dict[str, Any]] = field(default_factory=list)
    stored: int = 0
    pages: int = 0
    _page: list[dict[str, Any]] = field(default_factory=list)

    async def add(self, error: RowError) -> None:
        self.count += 1
        entry = error.as_dict()
        if len(self.first) < ANSWER_ERRORS:
            self.first.append(entry)
        if self.store is not None and self.stored < MAX_STORED_ERRORS:
            self.stored += 1
            self._page.append(entry)
            if len(self._page) >= ERRORS_PER_PAGE:
                await self.flush()

    async def flush(self) -> None:
        if self.store is None or not self._page:
            return
        page, self._page = self._page, []
        self.pages += 1
        await self.store.import_errors.insert_one(
            {
                "_id": f"{self.import_id}:{self.pages}",
                "import_id": self.import_id,
                "page": self.pages,
                "errors": sorted(page, key=lambda e: e["row"]),
            }
        )

    def answer(self) -> dict[str, Any]:
        return {
            "errors": sorted(self.first, key=lambda e: e["row"]),
            "errors_truncated": self.count > len(self.first),
        }


@dataclass
class _SubjectImport:
    store: Store
    import_id: str
    hash_key: bytes
    keyring: Keyring
    errors: ErrorLog
    rows: int = 0
    inserted: int = 0
    updated: int = 0
    rejected: int = 0
    chunk: dict[str, tuple[int, dict[str, Any]]] = field(default_factory=dict)
    insert_first: bool = True
    _writing: asyncio.Task[None] | None = None

    async def take(self, row: Row) -> None:
        self.rows += 1
        if row.errors:
            await self._reject(*row.errors)
            return
        try:
            subject = SubjectIn.model_validate(row.values)
        except ValidationError as exc:
            found = problems.from_validation_error(exc).errors
            await self._reject(*(RowError(row.number, e["field"], e["message"]) for e in found))
            return
        earlier = self.chunk.get(subject.external_id)
        if earlier is not None:
            await self._reject(_repeated(row.number, earlier[0]))
            return
        doc = subject_document(subject, self.hash_key, self.keyring)
        doc[LAST_IMPORT] = {"id": self.import_id, "row": row.number}
        self.chunk[subject.external_id] = (row.number, doc)
        if len(self.chunk) >= CHUNK_ROWS:
            await self.write()

    async def write(self) -> None:
        """Start writing the chunk while the next one is read; one write at a time, in order."""
        chunk, self.chunk = list(self.chunk.values()), {}
        await self.wait()
        if chunk:
            self._writing = asyncio.create_task(self._write(chunk))

    async def wait(self) -> None:
        """Until the chunk being written is written (its errors raised here)."""
        writing, self._writing = self._writing, None
        if writing is not None:
            await writing

    async def abort(self) -> None:
        writing, self._writing = self._writing, None
        if writing is not None:
            writing.cancel()
            with contextlib.suppress(BaseException):
                await writing

    async def _write(self, chunk: list[tuple[int, dict[str, Any]]]) -> None:
        """New people are inserted (much cheaper than upserts); the others upserted, and
        a subject this import already wrote is refused, naming its row. While most of a
        chunk is known already (a repeated import), upserts go first."""
        if self.insert_first:
            taken = await repository.insert_new_subjects(
                self.store, [doc for _, doc in chunk], _now()
            )
            self.inserted += len(chunk) - len(taken)
            self.insert_first = len(taken) <= len(chunk) // 2
            chunk = [chunk[i] for i in taken]
        for attempt in (1, 2):
            if not chunk:
                return
            result = await repository.upsert_imported_subjects(
                self.store, [doc for _, doc in chunk], _now(), import_id=self.import_id
            )
            self.inserted += result.inserted
            self.updated += result.updated
            if result.inserted > len(chunk) // 2:
                self.insert_first = True
            refused = [chunk[i] for i in result.refused]
            marks = await repository.last_imports(self.store, [d["_id"] for _, d in refused])
            chunk = []
            for row, doc in refused:
                mark = marks.get(doc["_id"], {})
                if mark.get("id") == self.import_id:
                    await self._reject(_repeated(row, mark["row"]))
                elif attempt == 1:  # another request created it a moment ago: once more
                    chunk.append((row, doc))
                else:
                    message = "written by another request at the same moment; import it again"
                    await self._reject(RowError(row, "external_id", message))

    async def _reject(self, *errors: RowError) -> None:
        self.rejected += 1
        for error in errors:
            await self.errors.add(error)

    def counts(self) -> dict[str, int]:
        return {
            "rows": self.rows,
            "imported": self.inserted + self.updated,
            "inserted": self.inserted,
            "updated": self.updated,
            "rejected": self.rejected,
        }


def _repeated(row: int, first: int) -> RowError:
    return RowError(row, "external_id", f"repeats row {first}, which is imported; this row is not")


async def import_subjects(
    store: Store,
    *,
    rows: AsyncIterator[Row],
    import_id: str,
    source: str,
    key: ApiKey,
    hash_key: bytes,
    keyring: Keyring,
) -> dict[str, Any]:
    """Validate and upsert every row of ``rows``; the counts and the first errors.

    The import's summary is kept in ``imports`` (state ``running``, then
    ``done``; ``failed`` with the counts so far if reading or writing stops
    it: the rows written until then stay written, which is safe, as a
    repeated import only upserts them again).
    """
    started = time.monotonic()
    await store.imports.insert_one(
        {
            "_id": import_id,
            "kind": "subjects",
            "source": source,
            "state": "running",
            "key_id": key.key_id,
            "started_at": _now(),
        }
    )
    job = _SubjectImport(store, import_id, hash_key, keyring, ErrorLog(store, import_id))
    try:
        async for row in rows:
            await job.take(row)
        await job.write()
        await job.wait()
        if job.rows == 0:
            raise NothingToImport
    except BaseException as exc:
        await job.abort()
        await job.errors.flush()
        await _finish(store, job, "failed", started, reason=type(exc).__name__)
        raise
    await job.errors.flush()
    await _finish(store, job, "done", started)
    return {"import_id": import_id, **job.counts(), **job.errors.answer()}


async def _finish(
    store: Store, job: _SubjectImport, state: str, started: float, *, reason: str | None = None
) -> None:
    await store.imports.update_one(
        {"_id": job.import_id},
        {
            "$set": {
                "state": state,
                "reason": reason,
                **job.counts(),
                "errors": job.errors.count,
                "errors_stored": job.errors.stored,
                "error_pages": job.errors.pages,
                "seconds": round(time.monotonic() - started, 3),
                "finished_at": _now(),
            }
        },
    )


async def find_import(store: Store, import_id: str) -> dict[str, Any] | None:
    found = await store.imports.find_one({"_id": import_id})
    if found is None:
        return None
    found["import_id"] = found.pop("_id")
    for when in ("started_at", "finished_at"):
        if found.get(when) is not None:
            found[when] = found[when].isoformat()
    return found


async def find_error_page(store: Store, import_id: str, page: int) -> dict[str, Any] | None:
    found = await store.import_errors.find_one({"_id": f"{import_id}:{page}"})
    if found is None:
        return None
    return {"import_id": import_id, "page": page, "errors": found["errors"]}


# -- lists --------------------------------------------------------------------


@dataclass
class _ListUpload:
    store: Store
    list_id: str
    errors: ErrorLog
    rows: int = 0
    rejected: int = 0
    unknown: int = 0
    unknown_ids: dict[str, None] = field(default_factory=dict)  # the first, in order
    chunk: dict[str, None] = field(default_factory=dict)

    async def take(self, row: Row) -> None:
        self.rows += 1
        if not row.errors:
            try:
                subject_id = _SUBJECT_ID.validate_python(row.values.get("external_id"))
            except ValidationError as exc:
                message = exc.errors()[0]["msg"] if exc.errors() else "not an external id"
                row = Row(row.number, errors=(RowError(row.number, "external_id", message),))
            else:
                self.chunk[subject_id] = None
                if len(self.chunk) >= CHUNK_ROWS:
                    await self.write()
                return
        self.rejected += 1
        for error in row.errors:
            await self.errors.add(error)

    async def write(self) -> None:
        ids, self.chunk = list(self.chunk), {}
        known = await repository.existing_subject_ids(self.store, ids)
        for subject_id in ids:
            if subject_id not in known:
                self.unknown += 1
                if len(self.unknown_ids) < ANSWER_UNKNOWN_IDS:
                    self.unknown_ids[subject_id] = None
        await repository.mark_list_members(self.store, self.list_id, [i for i in ids if i in known])


async def create_list(
    store: Store, *, rows: AsyncIterator[Row], list_id: str, source: str, key: ApiKey
) -> dict[str, Any]:
    """Mark every known subject ``rows`` names as a member of a new list; the counts.

    The list is usable as an audience only once complete (``ready``); if the
    upload stops part-way it is ``failed`` and its marks are taken off again.
    """
    await store.lists.insert_one(
        {
            "_id": list_id,
            "state": "building",
            "source": source,
            "key_id": key.key_id,
            "key_name": key.name,
            "created_at": _now(),
        }
    )
    job = _ListUpload(store, list_id, ErrorLog())
    try:
        async for row in rows:
            await job.take(row)
        if job.rows == 0:
            raise NothingToImport
        await job.write()
        members = await repository.count_list_members(store, list_id)
    except BaseException:
        await store.lists.update_one({"_id": list_id}, {"$set": {"state": "failed"}})
        await repository.unmark_list_members(store, list_id)
        raise
    counts = {
        "rows": job.rows,
        "members": members,
        "unknown_ids_count": job.unknown,
        "rejected": job.rejected,
    }
    await store.lists.update_one(
        {"_id": list_id}, {"$set": {"state": "ready", "ready_at": _now(), **counts}}
    )
    return {
        "list_id": list_id,
        **counts,
        "unknown_ids": list(job.unknown_ids),
        **job.errors.answer(),
    }


async def find_list(store: Store, list_id: str) -> dict[str, Any] | None:
    found = await store.lists.find_one({"_id": list_id}, {"key_id": 0})
    if found is None:
        return None
    found["list_id"] = found.pop("_id")
    for when in ("created_at", "ready_at"):
        if found.get(when) is not None:
            found[when] = found[when].isoformat()
    return found


async def audience_problems(store: Store, audience: AudienceSpec) -> list[dict[str, str]]:
    """Why the audience's list cannot be used, if it names one: unknown, or not complete."""
    if audience.list_id is None:
        return []
    found = await store.lists.find_one({"_id": audience.list_id}, {"state": 1})
    if found is None:
        return [{"field": "audience.list_id", "message": "no list with this id"}]
    if found["state"] != "ready":
        return [
            {
                "field": "audience.list_id",
                "message": f"the list is {found['state']}, not ready: upload it again",
            }
        ]
    return []
