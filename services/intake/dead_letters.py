"""Replay of a notice's dead letters (people given up on after the last retry), and
their discard when the people's contact data is purged.

Their batches wait in ``dead.delivery.<channel>`` and their receipts' current
attempts say ``failed`` with ``dead_lettered``. Replaying takes the notice's
batches off those queues (others are put back), records a ``replay`` attempt
that makes those people ``retrying`` again (:func:`alimi.decisions.decide`:
the receipts move to it, and the counts with them, in one transaction) and
publishes each batch to its channel as a first attempt; the delivery claim
keeps anyone from being told twice. The order (decision, publish, ack) means a
crash part-way loses nothing: an unacked batch stays in the dead-letter queue
and a second replay finishes the work. The API runs a replay as a job
(:mod:`alimi_intake.jobs`), told the counts after each batch.

A dead-lettered batch carries its people's numbers in clear, so purging an
incident's contact data (``privacy.purge_contact_data``) discards its
notices' dead letters too: acked without a send, and a ``discard`` attempt
keeps the people ``failed`` with their last error and records the discard.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aio_pika.abc import AbstractIncomingMessage

from alimi import attempts, decisions, ids, leases, notice_states, receipt_view, states, topology
from alimi.attempts import Outcome
from alimi.bus import Bus
from alimi.decisions import Where
from alimi.messages import DeliveryBatch, InvalidMessage, parse
from alimi.receipt_view import chunks
from alimi.store import Store

log = logging.getLogger("alimi.intake.dead_letters")

# Intake's decisions are rare and one at a time per request: one counter shard does.
SHARD = "intake"
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
# Told the counts so far after each batch (a job's progress).
Counted = Callable[[Replayed], Awaitable[None]]


async def replay(
    store: Store, bus: Bus, notice_id: str, *, after_batch: Counted | None = None
) -> Replayed:
    async def send_again(channel: str, batch: DeliveryBatch) -> None:
        await _reset_receipts(store, batch)
        again = batch.model_copy(
            update={
                "batch_id": f"{ATTEMPT_SUFFIX.sub('', batch.batch_id)}:replay",
                "attempt": 1,
            }
        )
        await bus.publish(topology.DELIVERY, channel, again.to_bytes(), message_id=again.batch_id)

    async with _owning(store, [notice_id]):
        result = await _take(bus, {notice_id}, send_again, after_batch)
    if result.batches:
        # A notice that completed with failures is sending again until they are final.
        await notice_states.move(
            store,
            notice_id,
            "reopen",
            unset={"completed_at": "", "reports_final_at": "", "reports_shown": ""},
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
        await _decide(
            store,
            batch,
            attempts.DISCARD,
            lambda entry: Outcome(
                entry["subject_id"],
                states.FAILED,
                error_code=entry.get("error_code"),
                error=entry.get("error"),
                detail=DISCARDED_DETAIL,
                extra={"dead_letter_discarded_at": now},
            ),
        )

    wanted = set(notice_ids)
    async with _owning(store, sorted(wanted)):
        result = await _take(bus, wanted, drop)
    if result.batches:
        log.info(
            "dead letters discarded",
            extra={"notice_ids": sorted(wanted), "count": result.recipients},
        )
    return result


DISCARDED_DETAIL = "dead letter discarded with the people's contact data"
LEASE_S = 300.0  # longer than a scan of MAX_SCANNED messages per channel ever takes


def lease_name(notice_id: str) -> str:
    return f"dead-letters:{notice_id}"


async def busy(store: Store, notice_id: str) -> bool:
    """Whether a replay or discard of the notice's dead letters holds its lease now."""
    holder = await leases.Named(store, lease_name(notice_id), "", LEASE_S).holder()
    return holder is not None


class Busy(Exception):
    """Another request is replaying or discarding a notice's dead letters right now."""

    def __init__(self, notice_id: str) -> None:
        super().__init__(
            f"the dead letters of notice {notice_id} are being replayed or discarded by another"
            " request; try again when it is done"
        )
        self.notice_id = notice_id


@contextlib.asynccontextmanager
async def _owning(store: Store, notice_ids: list[str]) -> AsyncIterator[None]:
    """One replay or discard at a time per notice: two scans of the same dead-letter queue
    would hand each other's messages back and forth."""
    owner = leases.owner_id("intake-dead-letters")
    held: list[leases.Named] = []
    try:
        for notice_id in notice_ids:
            lease = leases.Named(store, lease_name(notice_id), owner, LEASE_S)
            if not await lease.acquire():
                raise Busy(notice_id)
            held.append(lease)
        yield
    finally:
        for lease in held:
            await lease.release()


async def _take(
    bus: Bus, notice_ids: set[str], action: BatchAction, after_batch: Counted | None = None
) -> Replayed:
    """Take the batches of ``notice_ids`` off every dead-letter queue, each after ``action``.

    The order (action, then ack) means a crash part-way loses nothing: an
    unacked batch stays in its queue and the next call handles it.
    """
    result = Replayed()
    for channel in topology.RETRIED_CHANNELS:
        await _take_channel(bus, notice_ids, channel, action, result, after_batch)
    return result


async def _take_channel(
    bus: Bus,
    notice_ids: set[str],
    channel: str,
    action: BatchAction,
    result: Replayed,
    after_batch: Counted | None,
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
            if after_batch is not None:
                await after_batch(result)
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
    await _decide(
        store,
        batch,
        attempts.REPLAY,
        lambda entry: Outcome(
            entry["subject_id"],
            RETRYING,
            error_code=entry.get("error_code"),
            error=entry.get("error"),
            detail="dead letter replayed",
        ),
    )


async def _decide(
    store: Store,
    batch: DeliveryBatch,
    kind: str,
    outcome: Callable[[dict[str, Any]], Outcome],
) -> None:
    """Record ``kind`` for the batch's people still dead-lettered: ``outcome`` of each one's
    dead-lettered entry, their receipts moved to it (once: a person replayed or discarded
    before is left as is)."""
    views = await receipt_view.read(
        store,
        [ids.receipt_id(batch.notice_id, r.subject_id) for r in batch.recipients],
        with_reports=False,
    )
    waiting = [v for v in views.values() if v.entry.get("dead_lettered")]
    if not waiting:
        return
    doc = attempts.document(
        ids.attempt_id(f"{batch.batch_id}:{kind}"),
        kind=kind,
        notice_id=batch.notice_id,
        incident_id=batch.incident_id,
        channel=waiting[0].channel,
        batch_id=batch.batch_id,
        at=datetime.now(UTC),
        outcomes=[outcome(dict(v.entry)) for v in waiting],
    )
    where = [
        Where(v.receipt_id, v.subject_id, v.attempt_id or "", v.status, v.channel) for v in waiting
    ]
    await decisions.decide(store, doc, where, shard=SHARD)


LAST_ERRORS = 10


async def pending(store: Store, notice_id: str) -> dict[str, Any]:
    """The notice's people waiting as dead letters: per channel, and the last errors.

    Read from the attempts that gave people up (``dead_lettered``) and the
    receipts still naming them (replay and discard move receipts on), so it
    says what :func:`replay` would put back.
    """
    by_channel: dict[str, int] = {}
    groups: dict[tuple[str, str | None], dict[str, Any]] = {}
    async for doc in store.attempts.find({"notice_id": notice_id, "dead_lettered": True}):
        gave_up = [e for e in doc["people"] if e.get("dead_lettered")]
        still = await _still_naming(store, notice_id, doc["_id"], gave_up)
        if not still:
            continue
        channel = doc.get("channel") or "none"
        by_channel[channel] = by_channel.get(channel, 0) + len(still)
        for entry in still:
            group = groups.setdefault(
                (channel, entry.get("error")),
                {"channel": channel, "error": entry.get("error"), "count": 0, "last_at": None},
            )
            group["count"] += 1
            at = doc.get("at")
            if isinstance(at, datetime) and (group["last_at"] is None or at > group["last_at"]):
                group["last_at"] = at
    errors = [
        {**g, "last_at": g["last_at"].isoformat() if g["last_at"] else None}
        for g in groups.values()
    ]
    errors.sort(key=lambda e: (e["last_at"] or "", e["count"]), reverse=True)
    return {
        "total": sum(by_channel.values()),
        "by_channel": by_channel,
        "last_errors": errors[:LAST_ERRORS],
    }


async def _still_naming(
    store: Store, notice_id: str, attempt_id: str, entries: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Those of ``entries`` whose receipt still names ``attempt_id``."""
    by_id = {ids.receipt_id(notice_id, e["subject_id"]): e for e in entries}
    still: list[dict[str, Any]] = []
    for part in chunks(list(by_id)):
        async for doc in store.receipts.find(
            {"_id": {"$in": part}, "attempt": attempt_id}, {"_id": 1}
        ):
            still.append(by_id[doc["_id"]])
    return still
