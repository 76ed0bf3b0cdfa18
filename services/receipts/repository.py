"""MongoDB reads and writes of the receipts service."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pymongo import UpdateOne

from alimi.store import Store


async def apply(store: Store, ops: Sequence[UpdateOne]) -> int:
    """One unordered bulk write; the number of receipts it matched."""
    if not ops:
        return 0
    result = await store.receipts.bulk_write(list(ops), ordered=False)
    return result.matched_count


async def find_states(store: Store, receipt_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Receipt id -> ``{status, provider_message_id, report_id}`` of those that exist."""
    cursor = store.receipts.find(
        {"_id": {"$in": list(receipt_ids)}},
        {"status": 1, "provider_message_id": 1, "report_id": 1},
    )
    return {doc["_id"]: doc async for doc in cursor}
