"""A decision about people who already have a receipt: a new attempt they move to.

Some decisions are made after a person's attempt was written: an attempt in
doubt found at the provider (``sent``), dead letters replayed (``retrying``
again) or discarded with the people's contact data. Each is one attempt
document (:mod:`alimi.attempts`) and, in the same transaction, the people's
receipts moved to it — each only if it still names the attempt it was read
at, so a decision never overwrites one made meanwhile — and the counts those
moves change (:mod:`alimi.counters`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pymongo.asynchronous.client_session import AsyncClientSession

from alimi import counters
from alimi.counters import Delta
from alimi.store import Store


@dataclass(frozen=True)
class Where:
    """Where a person's receipt stood when it was read."""

    receipt_id: str
    subject_id: str
    attempt_id: str
    status: str
    channel: str


async def decide(
    store: Store, doc: Mapping[str, Any], people: Sequence[Where], *, shard: str
) -> int:
    """Insert the decision ``doc`` and move ``people``'s receipts to it; how many moved."""
    new_status = {e["subject_id"]: e["status"] for e in doc["people"]}
    groups: dict[tuple[str, str, str, str], list[str]] = defaultdict(list)
    for w in people:
        groups[(w.attempt_id, w.status, w.channel, new_status[w.subject_id])].append(w.receipt_id)

    async def work(session: AsyncClientSession) -> int:
        await store.attempts.insert_one(dict(doc), session=session)
        delta = Delta()
        moved = 0
        for (old_attempt, status, channel, new), receipt_ids in groups.items():
            result = await store.receipts.update_many(
                {"_id": {"$in": receipt_ids}, "attempt": old_attempt},
                {"$set": {"attempt": doc["_id"]}, "$push": {"history": old_attempt}},
                session=session,
            )
            delta.add(channel, status, -result.modified_count)
            delta.add(doc["channel"], new, result.modified_count)
            moved += result.modified_count
        await counters.add(store, doc["notice_id"], delta, shard=shard, session=session)
        return moved

    return await store.in_transaction(work)
