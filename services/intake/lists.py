"""Uploaded lists of people: the people an investigation found affected, as an audience.

Rows are read as they arrive (:mod:`alimi_intake.rows`) and at most one
chunk of them is held, so a list of millions is uploaded in constant memory.
Every known subject it names gets the list's id in its ``lists`` array; the
list is usable as an audience once ``ready``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import TypeAdapter, ValidationError

from alimi.api_keys import ApiKey
from alimi.audience import AudienceSpec, SubjectId
from alimi.store import Store
from alimi_intake import repository
from alimi_intake.rows import Row, RowError
from alimi_intake.upload_errors import ErrorLog, NothingToImport

CHUNK_ROWS = 1000
ANSWER_UNKNOWN_IDS = 1000

_SUBJECT_ID: TypeAdapter[str] = TypeAdapter(SubjectId)


def _now() -> datetime:
    return datetime.now(UTC)


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
