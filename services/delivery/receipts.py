"""Receipt writes of the delivery service: claim before send, record after, in bulk.

A receipt's ``_id`` is ``{notice_id}:{subject_id}``. Claiming upserts it with a
filter that only matches a missing or ``retrying`` receipt: for a receipt that
is already claimed or final the upsert collides on ``_id`` (duplicate key) and
that person is not sent to again. One unordered bulk write per batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from pymongo import UpdateOne
from pymongo.errors import BulkWriteError

from alimi import ids, phone, states
from alimi.messages import DeliveryBatch, Recipient
from alimi.store import Store

DUPLICATE_KEY = 11000
RETRYING = "retrying"


def _now() -> datetime:
    return datetime.now(UTC)


async def claim(store: Store, batch: DeliveryBatch, provider: str) -> list[Recipient]:
    """Claim every recipient not yet handled; return those this worker now owns."""
    now = _now()
    ops = []
    for r in batch.recipients:
        ops.append(
            UpdateOne(
                {"_id": ids.receipt_id(batch.notice_id, r.subject_id), "status": RETRYING},
                {
                    "$set": {
                        "status": states.CLAIMED,
                        "claimed_at": now,
                        "batch_id": batch.batch_id,
                        "updated_at": now,
                    },
                    "$setOnInsert": {
                        "notice_id": batch.notice_id,
                        "incident_id": batch.incident_id,
                        "subject_id": r.subject_id,
                        "also_subject_ids": list(r.also_subject_ids),
                        "channel": batch.channel,
                        "provider": provider,
                        "destination": phone.mask(r.phone),
                        "attempts": 0,
                        "created_at": now,
                    },
                    "$push": {
                        "events": {"at": now, "status": states.CLAIMED, "detail": batch.batch_id}
                    },
                },
                upsert=True,
            )
        )
    lost: set[int] = set()
    try:
        await store.receipts.bulk_write(ops, ordered=False)
    except BulkWriteError as exc:
        for err in exc.details["writeErrors"]:
            if err["code"] != DUPLICATE_KEY:
                raise
            lost.add(err["index"])
    return [r for i, r in enumerate(batch.recipients) if i not in lost]


async def record(store: Store, notice_id: str, outcomes: Sequence[dict[str, Any]]) -> None:
    """Write each claimed recipient's outcome: ``sent``, ``failed`` or ``retrying``."""
    now = _now()
    ops = []
    for o in outcomes:
        fields = {"status": o["status"], "updated_at": now, "message_type": o.get("message_type")}
        if o.get("message_id"):
            fields["provider_message_id"] = o["message_id"]
            fields["sent_at"] = now
        if o.get("error_code"):
            fields["error_code"] = o["error_code"]
            fields["error"] = o.get("error")
        detail = o.get("error") or o.get("message_id") or ""
        ops.append(
            UpdateOne(
                {"_id": ids.receipt_id(notice_id, o["subject_id"]), "status": states.CLAIMED},
                {
                    "$set": fields,
                    "$inc": {"attempts": 1},
                    "$push": {"events": {"at": now, "status": o["status"], "detail": detail}},
                },
            )
        )
    if ops:
        await store.receipts.bulk_write(ops, ordered=False)
