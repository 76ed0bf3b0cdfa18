"""Segmentation of one notice, resumable from its checkpoint."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from prometheus_client import Counter
from pymongo import InsertOne, ReturnDocument
from pymongo.errors import BulkWriteError

from alimi import ids, states, topology
from alimi.audience import AudienceSpec, to_query
from alimi.bus import Bus
from alimi.messages import Channel, DeliveryBatch
from alimi.store import Store
from alimi_segmenter.batching import batches

log = logging.getLogger("alimi.segmenter")

RESOLVED = Counter(
    "alimi_segmenter_recipients_total", "People resolved from audiences, by outcome", ["outcome"]
)
BATCHES = Counter("alimi_segmenter_batches_published_total", "Delivery batches published")

CHANNEL: Channel = "sms"  # channel choice per person arrives with the channels work
SUBJECT_FIELDS = {"_id": 1, "phone": 1, "phone_hash": 1, "name": 1, "locale": 1}
DUPLICATE_KEY = 11000


def _now() -> datetime:
    return datetime.now(UTC)


async def _stream(store: Store, query: dict[str, Any], after: str) -> AsyncIterator[dict[str, Any]]:
    cursor = (
        store.subjects.find({"$and": [query, {"phone_hash": {"$gt": after}}]}, SUBJECT_FIELDS)
        .sort([("phone_hash", 1), ("_id", 1)])
        .batch_size(1000)
    )
    async for doc in cursor:
        yield doc


async def _skip_people_without_phone(
    store: Store, notice: dict[str, Any], query: dict[str, Any]
) -> int:
    """Give everyone in the audience with no phone number a ``skipped`` receipt."""
    now = _now()
    total = 0
    chunk: list[InsertOne[dict[str, Any]]] = []

    async def flush() -> None:
        nonlocal chunk
        if chunk:
            try:
                await store.receipts.bulk_write(chunk, ordered=False)
            except BulkWriteError as exc:  # already there from an earlier, interrupted run
                if any(e["code"] != DUPLICATE_KEY for e in exc.details["writeErrors"]):
                    raise
            chunk = []

    async for doc in store.subjects.find({"$and": [query, {"phone_hash": None}]}, {"_id": 1}):
        total += 1
        chunk.append(
            InsertOne(
                {
                    "_id": ids.receipt_id(notice["_id"], doc["_id"]),
                    "notice_id": notice["_id"],
                    "incident_id": notice["incident_id"],
                    "subject_id": doc["_id"],
                    "channel": None,
                    "status": states.SKIPPED,
                    "reason": "no_phone",
                    "attempts": 0,
                    "created_at": now,
                    "updated_at": now,
                    "events": [
                        {
                            "at": now,
                            "status": states.SKIPPED,
                            "detail": "no reachable channel: no phone number",
                        }
                    ],
                }
            )
        )
        if len(chunk) >= 1000:
            await flush()
    await flush()
    RESOLVED.labels("skipped_no_phone").inc(total)
    return total


async def segment_notice(store: Store, bus: Bus, *, notice_id: str, batch_size: int) -> None:
    notice = await store.notices.find_one_and_update(
        {"_id": notice_id, "state": {"$in": [states.NOTICE_APPROVED, states.NOTICE_SEGMENTING]}},
        {"$set": {"state": states.NOTICE_SEGMENTING, "updated_at": _now()}},
        return_document=ReturnDocument.AFTER,
    )
    if notice is None:
        log.info("notice not awaiting segmentation; nothing to do", extra={"notice_id": notice_id})
        return
    query = to_query(AudienceSpec.model_validate(notice["audience"]))
    checkpoint = notice.get("segmenter") or {}
    if checkpoint:
        log.info("resuming from checkpoint", extra={"notice_id": notice_id, **checkpoint})

    if not checkpoint.get("no_phone_done"):
        skipped = await _skip_people_without_phone(store, notice, query)
        await store.notices.update_one(
            {"_id": notice_id},
            {"$set": {"segmenter.no_phone_done": True, "progress.skipped_no_phone": skipped}},
        )

    async for batch in batches(
        _stream(store, query, checkpoint.get("last_phone_hash", "")),
        size=batch_size,
        first_seq=checkpoint.get("next_seq", 1),
    ):
        message = DeliveryBatch(
            batch_id=ids.batch_id(notice_id, CHANNEL, batch.seq),
            notice_id=notice_id,
            incident_id=notice["incident_id"],
            channel=CHANNEL,
            recipients=tuple(batch.recipients),
        )
        await bus.publish(
            topology.DELIVERY, CHANNEL, message.to_bytes(), message_id=message.batch_id
        )
        deduped = sum(len(r.also_subject_ids) for r in batch.recipients)
        await store.notices.update_one(
            {"_id": notice_id},
            {
                "$set": {
                    "segmenter.last_phone_hash": batch.last_phone_hash,
                    "segmenter.next_seq": batch.seq + 1,
                },
                "$inc": {
                    "progress.recipients_published": len(batch.recipients),
                    "progress.batches_published": 1,
                    "progress.deduplicated": deduped,
                },
            },
        )
        BATCHES.inc()
        RESOLVED.labels("published").inc(len(batch.recipients))
        RESOLVED.labels("deduplicated").inc(deduped)

    done = await store.notices.find_one_and_update(
        {"_id": notice_id, "state": states.NOTICE_SEGMENTING},
        {"$set": {"state": states.NOTICE_SENDING, "segmented_at": _now()}},
        return_document=ReturnDocument.AFTER,
    )
    if done is not None:
        log.info(
            "notice segmented",
            extra={
                "notice_id": notice_id,
                "incident_id": notice["incident_id"],
                "progress": done.get("progress", {}),
            },
        )
