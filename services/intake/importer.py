"""Subject imports: rows read and checked as the upload streams in, applied by a job.

**What the request does, and what the job does.** The body cannot outlive
the request, so reading it stays there: :func:`stage` takes the rows as they
are read (:mod:`alimi_intake.rows`), validates each, and stores the valid
ones in their stored form (the phone number encrypted, hashed and masked:
never in clear) in chunks of :data:`CHUNK_ROWS` in ``import_chunks``; rows
that cannot be imported are counted and their errors kept (every error up
to :data:`~alimi_intake.upload_errors.MAX_STORED_ERRORS` in
``import_errors``, in pages, under the import's id). A file that cannot be
used at all (its header, no row, over the size limit) is refused by the
request, and what was staged of it is deleted: nothing is imported. The
job (:mod:`alimi_intake.jobs`) then :func:`apply`-s the chunks in order —
the upserts, the part that costs — reporting its progress after each chunk
and deleting each chunk once applied. Memory stays one chunk whatever the
size of the file.

A subjects import is idempotent by external id (upserts). When one file names
the same external id twice, the first row is imported and each later one is
refused, naming the first: within a chunk by the chunk itself, across chunks
by the database, not by remembering ids (see
:func:`alimi_intake.repository.upsert_imported_subjects`).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import bson
from pydantic import ValidationError

from alimi import problems
from alimi.crypto import Keyring
from alimi.store import Store
from alimi_intake import repository
from alimi_intake.jobs import Progress
from alimi_intake.models import SubjectIn
from alimi_intake.repository import LAST_IMPORT
from alimi_intake.rows import Row, RowError
from alimi_intake.service import subject_document
from alimi_intake.upload_errors import ErrorLog, NothingToImport

CHUNK_ROWS = 1000
CHUNK_BYTES = 8 * 1024 * 1024  # a staged chunk stays well under MongoDB's 16 MB a document


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Staged:
    """An upload read whole: its rows counted, the valid ones staged in ``chunks``."""

    store: Store
    import_id: str
    source: str
    errors: ErrorLog
    hash_key: bytes
    keyring: Keyring
    rows: int = 0
    rejected: int = 0
    staged: int = 0
    chunks: int = 0
    started: float = field(default_factory=time.monotonic)
    chunk: dict[str, tuple[int, dict[str, Any]]] = field(default_factory=dict)
    chunk_bytes: int = 0

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
        self.chunk_bytes += len(bson.encode(doc))
        if len(self.chunk) >= CHUNK_ROWS or self.chunk_bytes >= CHUNK_BYTES:
            await self.write()

    async def write(self) -> None:
        """Stage the chunk read so far (one insert)."""
        chunk, self.chunk, self.chunk_bytes = list(self.chunk.values()), {}, 0
        if not chunk:
            return
        self.chunks += 1
        self.staged += len(chunk)
        await self.store.import_chunks.insert_one(
            {
                "_id": f"{self.import_id}:{self.chunks}",
                "import_id": self.import_id,
                "n": self.chunks,
                "rows": [row for row, _ in chunk],
                "docs": [doc for _, doc in chunk],
                "created_at": _now(),
            }
        )

    async def _reject(self, *errors: RowError) -> None:
        self.rejected += 1
        for error in errors:
            await self.errors.add(error)


def _repeated(row: int, first: int) -> RowError:
    return RowError(row, "external_id", f"repeats row {first}, which is imported; this row is not")


async def stage(
    store: Store,
    *,
    rows: AsyncIterator[Row],
    import_id: str,
    source: str,
    hash_key: bytes,
    keyring: Keyring,
) -> Staged:
    """Read and check every row of ``rows``, staging the valid ones for :func:`apply`.

    Raises what stops the upload (the rows' own errors, :class:`NothingToImport`)
    after deleting what was staged and stored of it.
    """
    staged = Staged(store, import_id, source, ErrorLog(store, import_id), hash_key, keyring)
    try:
        async for row in rows:
            await staged.take(row)
        await staged.write()
        if staged.rows == 0:
            raise NothingToImport
    except BaseException:
        await store.import_chunks.delete_many({"import_id": import_id})
        await staged.errors.discard()
        raise
    return staged


@dataclass
class _Applied:
    store: Store
    import_id: str
    errors: ErrorLog
    inserted: int = 0
    updated: int = 0
    rejected: int = 0
    insert_first: bool = True

    async def write(self, chunk: list[tuple[int, dict[str, Any]]]) -> None:
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


async def apply(store: Store, staged: Staged, progress: Progress) -> dict[str, Any]:
    """Write the staged chunks in order; the import's counts and first errors.

    If it stops part-way, the rows written until then stay written, which is
    safe: importing the file again only upserts them again.
    """
    applied = _Applied(store, staged.import_id, staged.errors)
    done = 0

    def counts() -> dict[str, int]:
        return {
            "rows": staged.rows,
            "imported": applied.inserted + applied.updated,
            "inserted": applied.inserted,
            "updated": applied.updated,
            "rejected": staged.rejected + applied.rejected,
        }

    try:
        for n in range(1, staged.chunks + 1):
            chunk_id = f"{staged.import_id}:{n}"
            found = await store.import_chunks.find_one({"_id": chunk_id})
            if found is None:
                raise LookupError(f"staged chunk {chunk_id} is gone")
            await applied.write(list(zip(found["rows"], found["docs"], strict=True)))
            await store.import_chunks.delete_one({"_id": chunk_id})
            done += len(found["rows"])
            await progress.report(done, staged.staged, **counts())
    finally:
        await staged.errors.flush()
        await store.import_chunks.delete_many({"import_id": staged.import_id})
    return {
        "import_id": staged.import_id,
        "source": staged.source,
        **counts(),
        **staged.errors.answer(),
        "error_count": staged.errors.count,
        "errors_stored": staged.errors.stored,
        "error_pages": staged.errors.pages,
        "seconds": round(time.monotonic() - staged.started, 3),
    }
