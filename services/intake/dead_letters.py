"""Replay of a notice's dead letters (people given up on after the last retry), and
their discard when the people's contact data is purged.

Their batches wait in ``dead.delivery.<channel>`` and their receipts are
``failed`` with ``dead_lettered``. Replaying takes the notice's batches off
those queues (others are put back), makes the receipts ``retrying`` again and
publishes each batch to its channel as a first attempt; the delivery claim
keeps anyone from being told twice. The order (receipts, publish, ack) means a
crash part-way loses nothing: an unacked batch stays in the dead-letter queue
and a second replay finishes the job.

A dead-lettered batch carries its people's numbers in clear, so purging an
incident's contact data (``privacy.purge_contact_data``) discards its
notices' dead letters too: acked without a send, the receipts keep their
``failed`` status and last error and record the discard.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Iterable
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

    def count(self, channel: str, batch: DeliveryBatch) -> None:
        self.batches += 1
        self.recipients += len(batch.recipients)
        self.channels[channel] = self.channels.get(channel, 0) + len(batch.recipients)


# What is done with a batch taken off a dead-letter queue, before it is acked.
BatchAction = Callable[[str, DeliveryBatch], Awaitable[None]]


async def replay(store: Store, bus: Bus, notice_id: str) -> Replayed:
    async def send_again(channel: str, batch: DeliveryBatch) -> None:
        await _reset_receipts(store, batch)
        again = batch.model_copy(
            update={
                "batch_id": f"{ATTEMPT_SUFFIX.sub('', batch.batch_id)}:replay",
                "attempt": 1,
            }
        )
        await bus.publish(topology.DELIVERY, channel, again.to_bytes(), message_id=again.batch_id)

    result = await _take(bus, {notice_id}, send_again)
    if result.batches:
        # A notice that completed with failures is sending again until they are final.
        await store.notices.update_one(
            {"_id": notice_id, "state": states.NOTICE_COMPLETED},
            {"$set": {"state": states.NOTICE_SENDING}, "$unset": {"completed_at": ""}},
        )
    for channel, count in result.channels.items():
        log.info(
            "dead letters replayed",
            extra={"notice_id": notice_id, "channel": channel, "count": count},
        )
    return result


async def discard(store: Store, bus: Bus, notice_ids: Iterable[str]) -> Replayed:
    """Drop the notices' dead letters for good: their bodies hold phone numbers in clear.

    Run when the people's contact data is purged; the receipts stay ``failed``
    with their last error, no longer ``dead_lettered`` (nothing is left to
    replay), and say when and why the batch was dropped.
    """

    async def drop(channel: str, batch: DeliveryBatch) -> None:
        now = datetime.now(UTC)
        receipt_ids = [ids.receipt_id(batch.notice_id, r.subject_id) for r in batch.recipients]
        event = {"at": now, "status": states.FAILED, "detail": DISCARDED_DETAIL}
        await store.receipts.update_many(
            {"_id": {"$in": receipt_ids}, "dead_lettered": True},
            {
                "$set": {"dead_letter_discarded_at": now, "updated_at": now},
                "$unset": {"dead_lettered": ""},
                "$push": {"events": event},
            },
        )

    wanted = set(notice_ids)
    result = await _take(bus, wanted, drop)
    if result.batches:
        log.info(
            "dead letters discarded",
            extra={"notice_ids": sorted(wanted), "count": result.recipients},
        )
    return result


DISCARDED_DETAIL = "dead letter discarded with the people's contact data"


async def _take(bus: Bus, notice_ids: set[str], action: BatchAction) -> Replayed:
    """Take the batches of ``notice_ids`` off every dead-letter queue, each after ``action``.

    The order (action, then ack) means a crash part-way loses nothing: an
    unacked batch stays in its queue and the next call handles it.
    """
    result = Replayed()
    for channel in topology.RETRIED_CHANNELS:
        await _take_channel(bus, notice_ids, channel, action, result)
    return result


async def _take_channel(
    bus: Bus, notice_ids: set[str], channel: str, action: BatchAction, result: Replayed
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
            if batch is None or batch.notice_id not in notice_ids:
                others.append(message)
                continue
            await action(channel, batch)
            await message.ack()
            result.count(channel, batch)
        else:
            result.more_remain = True
    finally:
        for message in others:  # not these notices': back where they were
            await message.nack(requeue=True)
        await amqp.close()


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
