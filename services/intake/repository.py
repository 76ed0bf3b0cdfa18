"""MongoDB reads and writes of the intake service."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pymongo import UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import BulkWriteError, DuplicateKeyError

from alimi import duplicate_keys
from alimi.store import Store, long_operation

LEGACY_CLEAR_PHONE = "phone"  # where versions before encryption at rest kept the number
LAST_IMPORT = "last_import"  # {id, row}: the streamed import, and its row, that last wrote it


def _subject_update(doc: dict[str, Any], now: datetime) -> dict[str, Any]:
    return {
        "$set": {**{k: v for k, v in doc.items() if k != "_id"}, "updated_at": now},
        "$setOnInsert": {"created_at": now},
        # A clear number stored before encryption at rest, or the mark of a purge
        # whose contact data this import brings back: neither outlives the import.
        "$unset": {LEGACY_CLEAR_PHONE: "", "contact_purged_at": ""},
    }


async def upsert_subjects(
    store: Store, docs: Sequence[dict[str, Any]], now: datetime
) -> dict[str, int]:
    ops = [UpdateOne({"_id": doc["_id"]}, _subject_update(doc, now), upsert=True) for doc in docs]
    if not ops:
        return {"inserted": 0, "updated": 0}
    result = await store.subjects.bulk_write(ops, ordered=False)
    return {"inserted": result.upserted_count, "updated": result.matched_count}


async def insert_new_subjects(
    store: Store, docs: Sequence[dict[str, Any]], now: datetime
) -> list[int]:
    """Insert ``docs`` as new subjects; the positions of those whose id is taken already."""
    if not docs:
        return []
    try:
        await store.subjects.insert_many(
            [{**doc, "created_at": now, "updated_at": now} for doc in docs], ordered=False
        )
    except BulkWriteError as exc:
        return duplicate_keys.collided(exc)
    return []


@dataclass(frozen=True)
class Upserted:
    inserted: int
    updated: int
    refused: list[int]  # positions in ``docs`` of subjects this import already wrote


async def upsert_imported_subjects(
    store: Store, docs: Sequence[dict[str, Any]], now: datetime, *, import_id: str
) -> Upserted:
    """Upsert ``docs`` (each with ``last_import.id`` = ``import_id``), refusing any subject
    this import already wrote: its ``_id`` is taken and the filter does not match it, so
    the upsert fails with a duplicate key. A file naming one person twice is caught
    without remembering the file's ids."""
    ops = [
        UpdateOne(
            {"_id": doc["_id"], f"{LAST_IMPORT}.id": {"$ne": import_id}},
            _subject_update(doc, now),
            upsert=True,
        )
        for doc in docs
    ]
    if not ops:
        return Upserted(0, 0, [])
    try:
        result = await store.subjects.bulk_write(ops, ordered=False)
    except BulkWriteError as exc:
        refused = duplicate_keys.collided(exc)
        return Upserted(exc.details["nUpserted"], exc.details["nMatched"], refused)
    return Upserted(result.upserted_count, result.matched_count, [])


async def last_imports(store: Store, subject_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """subject id -> its ``last_import`` (``{id, row}``), for those that have one."""
    found = store.subjects.find({"_id": {"$in": list(subject_ids)}}, {LAST_IMPORT: 1})
    return {d["_id"]: d[LAST_IMPORT] async for d in found if LAST_IMPORT in d}


async def existing_subject_ids(store: Store, subject_ids: Sequence[str]) -> set[str]:
    found = store.subjects.find({"_id": {"$in": list(subject_ids)}}, {"_id": 1})
    return {d["_id"] async for d in found}


async def mark_list_members(store: Store, list_id: str, subject_ids: Sequence[str]) -> None:
    if subject_ids:
        await store.subjects.update_many(
            {"_id": {"$in": list(subject_ids)}}, {"$addToSet": {"lists": list_id}}
        )


async def count_list_members(store: Store, list_id: str) -> int:
    with long_operation():  # a list may hold millions
        return await store.subjects.count_documents({"lists": list_id})


async def unmark_list_members(store: Store, list_id: str) -> None:
    with long_operation():
        await store.subjects.update_many({"lists": list_id}, {"$pull": {"lists": list_id}})


async def insert_incident_with_notice(
    store: Store, incident: dict[str, Any], notice: dict[str, Any], audit_entry: dict[str, Any]
) -> None:
    """Incident, first notice and the audit entry: all three or none."""

    async def work(session: AsyncClientSession) -> None:
        await store.incidents.insert_one(incident, session=session)
        await store.notices.insert_one(notice, session=session)
        await store.audit.insert_one(audit_entry, session=session)

    await store.in_transaction(work)


async def find_incident(store: Store, incident_id: str) -> dict[str, Any] | None:
    return await store.incidents.find_one({"_id": incident_id})


async def incidents_page(
    store: Store, *, after: Mapping[str, Any] | None, limit: int
) -> list[dict[str, Any]]:
    """Up to ``limit`` incidents, newest first, older than ``after`` (an incident)."""
    query: dict[str, Any] = {}
    if after is not None:
        at = after["created_at"]
        query = {
            "$or": [{"created_at": {"$lt": at}}, {"created_at": at, "_id": {"$lt": after["_id"]}}]
        }
    cursor = store.incidents.find(query).sort([("created_at", -1), ("_id", -1)]).limit(limit)
    return await cursor.to_list()


async def notices_per_incident(store: Store, incident_ids: Sequence[str]) -> dict[str, int]:
    return {
        row["_id"]: row["n"]
        async for row in await store.notices.aggregate(
            [
                {"$match": {"incident_id": {"$in": list(incident_ids)}}},
                {"$group": {"_id": "$incident_id", "n": {"$sum": 1}}},
            ]
        )
    }


async def find_notice(
    store: Store, notice_id: str, fields: Sequence[str] | None = None
) -> dict[str, Any] | None:
    """The notice ``notice_id`` (only ``fields``, if given), or None."""
    projection = dict.fromkeys(fields, 1) if fields is not None else None
    return await store.notices.find_one({"_id": notice_id}, projection)


async def find_first_notice(store: Store, incident_id: str) -> dict[str, Any] | None:
    return await store.notices.find_one({"incident_id": incident_id, "seq": 1})


async def find_notices(store: Store, incident_id: str) -> list[dict[str, Any]]:
    return await store.notices.find({"incident_id": incident_id}).sort("seq", 1).to_list()


async def insert_update(store: Store, notice: dict[str, Any], audit_entry: dict[str, Any]) -> int:
    """A later notice with the next sequence number, and the audit entry.

    A status the update asks for (``incident_status``) stays on the notice: the
    incident moves only when a second key approves it (:mod:`alimi_intake.notices`).
    Two updates posted at once may pick the same number: the unique index on
    (incident, seq) refuses the second, which then takes the next one.
    """
    for _ in range(5):
        last = await store.notices.find_one(
            {"incident_id": notice["incident_id"]}, {"seq": 1}, sort=[("seq", -1)]
        )
        seq = (last or {}).get("seq", 0) + 1

        async def work(session: AsyncClientSession, seq: int = seq) -> None:
            await store.notices.insert_one({**notice, "seq": seq}, session=session)
            await store.audit.insert_one(audit_entry, session=session)

        try:
            await store.in_transaction(work)
            return seq
        except DuplicateKeyError:
            continue
    raise RuntimeError("could not number the notice: too many updates at once")


async def apply_incident_status(
    store: Store, notice: dict[str, Any], now: datetime, session: AsyncClientSession
) -> bool:
    """Set the incident's status to the one ``notice`` asks for, inside the approval's
    transaction; False if the notice asks for none, or a later notice's status is
    already in force (approvals out of order never turn the status back)."""
    status = notice.get("incident_status")
    if status is None:
        return False
    result = await store.incidents.update_one(
        {
            "_id": notice["incident_id"],
            "$or": [{"status_seq": {"$exists": False}}, {"status_seq": {"$lt": notice["seq"]}}],
        },
        {
            "$set": {
                "status": status,
                "status_changed_at": now,
                "status_seq": notice["seq"],
                "status_notice_id": notice["_id"],
            }
        },
        session=session,
    )
    return result.matched_count == 1
