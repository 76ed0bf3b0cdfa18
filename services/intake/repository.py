"""MongoDB reads and writes of the intake service."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pymongo import UpdateOne

from alimi.store import Store

LEGACY_CLEAR_PHONE = "phone"  # where versions before encryption at rest kept the number


async def upsert_subjects(
    store: Store, docs: Sequence[dict[str, Any]], now: datetime
) -> dict[str, int]:
    ops = [
        UpdateOne(
            {"_id": doc["_id"]},
            {
                "$set": {**{k: v for k, v in doc.items() if k != "_id"}, "updated_at": now},
                "$setOnInsert": {"created_at": now},
                # A clear number stored before encryption at rest, or the mark of a purge
                # whose contact data this import brings back: neither outlives the import.
                "$unset": {LEGACY_CLEAR_PHONE: "", "contact_purged_at": ""},
            },
            upsert=True,
        )
        for doc in docs
    ]
    if not ops:
        return {"inserted": 0, "updated": 0}
    result = await store.subjects.bulk_write(ops, ordered=False)
    return {"inserted": result.upserted_count, "updated": result.matched_count}


async def insert_incident_with_notice(
    store: Store, incident: dict[str, Any], notice: dict[str, Any], audit_entry: dict[str, Any]
) -> None:
    """Incident, first notice and the audit entry: all three or none."""
    async with store.client.start_session() as session:
        async with await session.start_transaction():
            await store.incidents.insert_one(incident, session=session)
            await store.notices.insert_one(notice, session=session)
            await store.audit.insert_one(audit_entry, session=session)


async def find_incident(store: Store, incident_id: str) -> dict[str, Any] | None:
    return await store.incidents.find_one({"_id": incident_id})


async def find_notices(store: Store, incident_id: str) -> list[dict[str, Any]]:
    return await store.notices.find({"incident_id": incident_id}).sort("seq", 1).to_list()
