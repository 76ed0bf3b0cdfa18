"""Replay of a notice's dead letters: people given up on after the last retry.

Their batches wait in ``dead.delivery.<channel>`` and their receipts are
``failed`` with ``dead_lettered``. Replaying takes the notice's batches off
those queues (others are put back), makes the receipts ``retrying`` again and
publishes each batch to its channel as a first attempt; the delivery claim
keeps anyone from being told twice. The order (receipts, publish, ack) means a
crash part-way loses nothing: an unacked batch stays in the dead-letter queue
and a second replay finishes the job.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aio_pika.abc import AbstractIncomingMessage

from alimi import ids, states, topology
from alimi.bus import Bus
from alimi.messages import DeliveryBatch, InvalidMessage, parse
from alimi.store import Store

log = logging.getLogger("alimi.intake.dead_letters")

MAX_SCANNED = 10_000  # messages looked at per channel and call; the answer says if more remain
RETRYING = states.RETRYING
ATTEMPT_SUFFIX = re.compile(r":(a\d+|held|replay)$")


@dataclass
class Replayed:
    batches: int = 0
    recipients: int = 0
    channels: dict[str, int] = field(default_factory=dict)
    more_remain: bool = False


async def replay(store: Store, bus: Bus, notice_id: str) -> Replayed:
    result = Replayed()
    for channel in topology.RETRIED_CHANNELS:
        await _replay_channel(store, bus, notice_id, channel, result)
    if result.batches:
        # A notice that completed with failures is sending again until they are final.
        await store.notices.update_one(
            {"_id": notice_id, "state": states.NOTICE_COMPLETED},
            {"$set": {"state": states.NOTICE_SENDING}, "$unset": {"completed_at": ""}},
        )
    return result


async def _replay_channel(
    store: Store, bus: Bus, notice_id: str, channel: str, result: Replayed
) -> None:
    amqp = await bus.channel(prefetch=0)
    others: list[AbstractIncomingMessage] = []
    try:
        queue = await amqp.get_queue(
            bus.names(topology.dead_queue(topology.delivery_queue(channel)))
        )
        scanned = 0
        while scanned < MAX_SCANNED:
            message = await queue.get(fail=False)
            if message is None:
                break
            scanned += 1
            batch = _batch_of(message)
            if batch is None or batch.notice_id != notice_id:
                others.append(message)
                continue
            await _reset_receipts(store, batch)
            again = batch.model_copy(
                update={
                    "batch_id": f"{ATTEMPT_SUFFIX.sub('', batch.batch_id)}:replay",
                    "attempt": 1,
                }
            )
            await bus.publish(
                topology.DELIVERY, channel, again.to_bytes(), message_id=again.batch_id
            )
            await message.ack()
            result.batches += 1
            result.recipients += len(batch.recipients)
            result.channels[channel] = result.channels.get(channel, 0) + len(batch.recipients)
        else:
            result.more_remain = True
    finally:
        for message in others:  # not this notice's: back where they were
            await message.nack(requeue=True)
        await amqp.close()
    if result.channels.get(channel):
        log.info(
            "dead letters replayed",
            extra={"notice_id": notice_id, "channel": channel, "count": result.channels[channel]},
        )


def _batch_of(message: AbstractIncomingMessage) -> DeliveryBatch | None:
    try:
        return parse(message.body, DeliveryBatch)
    except InvalidMessage:
        return None  # an invalid body dead-lettered by a consumer: nothing to replay


async def _reset_receipts(store: Store, batch: DeliveryBatch) -> None:
    now = datetime.now(UTC)
    receipt_ids = [ids.receipt_id(batch.notice_id, r.subject_id) for r in batch.recipients]
    event = {"at": now, "status": RETRYING, "detail": "dead letter replayed"}
    await store.receipts.update_many(
        {"_id": {"$in": receipt_ids}, "status": states.FAILED, "dead_lettered": True},
        {
            "$set": {"status": RETRYING, "updated_at": now},
            "$unset": {"dead_lettered": ""},
            "$push": {"events": event},
        },
    )


LAST_ERRORS = 10


async def pending(store: Store, notice_id: str) -> dict[str, Any]:
    """The notice's people waiting as dead letters: per channel, and the last errors.

    Read from the receipts (``failed`` with ``dead_lettered``), which replay
    resets, so it says what :func:`replay` would put back.
    """
    match = {"notice_id": notice_id, "status": states.FAILED, "dead_lettered": True}
    by_channel: dict[str, int] = {}
    errors: list[dict[str, Any]] = []
    pipeline: list[dict[str, Any]] = [
        {"$match": match},
        {
            "$group": {
                "_id": {"c": "$channel", "e": "$error"},
                "count": {"$sum": 1},
                "last_at": {"$max": "$updated_at"},
            }
        },
    ]
    async for row in await store.receipts.aggregate(pipeline):
        channel = row["_id"].get("c") or "none"
        by_channel[channel] = by_channel.get(channel, 0) + row["count"]
        last_at = row.get("last_at")
        errors.append(
            {
                "channel": channel,
                "error": row["_id"].get("e"),
                "count": row["count"],
                "last_at": last_at.isoformat() if isinstance(last_at, datetime) else None,
            }
        )
    errors.sort(key=lambda e: (e["last_at"] or "", e["count"]), reverse=True)
    return {
        "total": sum(by_channel.values()),
        "by_channel": by_channel,
        "last_errors": errors[:LAST_ERRORS],
    }
