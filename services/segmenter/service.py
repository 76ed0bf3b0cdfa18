"""Segmentation of one notice, resumable from its checkpoint.

Phone numbers are stored encrypted; they are decrypted here, one subject at a
time as the audience streams by, and leave only inside delivery batches (the
broker is inside the trust boundary: the provider needs the number).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from prometheus_client import Counter
from pymongo import ReturnDocument
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import BulkWriteError, DuplicateKeyError

from alimi import attempts, counters, ids, states, topology
from alimi import phone as phones
from alimi.attempts import Outcome
from alimi.audience import AudienceSpec, to_query
from alimi.bus import Bus
from alimi.channel_choice import DEFAULT_PREFERENCE
from alimi.counters import Delta, Shards
from alimi.crypto import Keyring, Unreadable
from alimi.messages import DeliveryBatch
from alimi.receipt_view import chunks
from alimi.store import Store
from alimi_segmenter import staff
from alimi_segmenter.batching import Batch, Skipped, batches

log = logging.getLogger("alimi.segmenter")

RESOLVED = Counter(
    "alimi_segmenter_recipients_total", "People resolved from audiences, by outcome", ["outcome"]
)
BATCHES = Counter("alimi_segmenter_batches_published_total", "Delivery batches published")

SUBJECT_FIELDS = {
    "_id": 1,
    "phone_enc": 1,
    "phone_hash": 1,
    "name": 1,
    "locale": 1,
    "channels": 1,
    "kakao_reachable": 1,
}
DUPLICATE_KEY = 11000
NO_PHONE = "no_phone"
CHECKPOINT_EVERY_S = 1.0  # the checkpoint and progress are saved at most this often
HALT_CHECK_S = 1.0  # a halt stops publishing within about this long


def _now() -> datetime:
    return datetime.now(UTC)


def in_phone_order(query: dict[str, Any], after: str) -> dict[str, Any]:
    """The audience ``query`` past ``after`` in phone-hash order, written so that the
    index the order needs comes first.

    The same people on any server. MongoDB's planner weighs every index; a planner
    that takes the first indexed field (SecantusDB, the development server) would
    otherwise read the whole audience through its tag index and sort it in memory
    before the first batch (20 s at 100,000 people) instead of streaming it in
    ``phone_hash`` order. A list audience has its own index in that order.
    """
    if set(query) == {"lists"}:
        return {"lists": query["lists"], "phone_hash": {"$gt": after}}
    return {"phone_hash": {"$gt": after}, **query}


async def _stream(
    store: Store, query: dict[str, Any], after: str, keyring: Keyring, notice_id: str
) -> AsyncIterator[dict[str, Any]]:
    """The audience after ``after``, each subject with its number decrypted in ``phone``.

    A number that cannot be decrypted (unknown key id, altered, missing) is logged
    without the number and given as ``phone`` None: batching skips that person.
    """
    cursor = (
        store.subjects.find(in_phone_order(query, after), SUBJECT_FIELDS)
        .sort([("phone_hash", 1), ("_id", 1)])
        .batch_size(1000)
    )
    async for doc in cursor:
        try:
            doc["phone"] = phones.unseal(keyring, doc["_id"], doc.pop("phone_enc", None))
        except Unreadable as exc:
            doc["phone"] = None
            log.error(
                "phone number cannot be decrypted; the person is skipped",
                extra={
                    "notice_id": notice_id,
                    "subject_id": doc["_id"],
                    "reason": exc.reason,
                    "key_id": exc.key_id,
                    "detail": str(exc),
                },
            )
        yield doc


@dataclass(frozen=True)
class Decided:
    """A person the segmenter decides about itself: skipped, or not reached (halted)."""

    subject_id: str
    also_subject_ids: tuple[str, ...]
    status: str
    reason: str | None = None
    detail: str | None = None


def _skipped(s: Skipped) -> Decided:
    return Decided(
        s.subject_id,
        s.also_subject_ids,
        states.SKIPPED,
        reason=s.reason,
        detail=f"no reachable channel: {s.detail}",
    )


async def _existing(store: Store, notice_id: str, subject_ids: list[str]) -> set[str]:
    """Those of ``subject_ids`` who already have a receipt of the notice."""
    found: set[str] = set()
    for part in chunks([ids.receipt_id(notice_id, s) for s in subject_ids]):
        async for doc in store.receipts.find({"_id": {"$in": part}}, {"subject_id": 1}):
            found.add(doc["subject_id"])
    return found


async def _write_decided(
    store: Store, notice: dict[str, Any], people: list[Decided], *, shard: str
) -> int:
    """Receipts for ``people`` who have none yet, with their attempt and counts, in one
    transaction; how many were written. People who already have a receipt (an earlier,
    interrupted run, or told before a resume) keep it as it is.
    """
    if not people:
        return 0
    notice_id = notice["_id"]
    have = await _existing(store, notice_id, [p.subject_id for p in people])
    new = [p for p in people if p.subject_id not in have]
    if not new:
        return 0
    now = _now()
    # The same people decided the same way get the same attempt id: a step run again
    # after a crash finds its attempt already written and adds nothing.
    digest = hashlib.sha256("\0".join(p.subject_id for p in new).encode()).hexdigest()[:16]
    attempt_id = f"{notice_id}:segment:{new[0].status}:{digest}"
    doc = attempts.document(
        attempt_id,
        kind=attempts.SEGMENT,
        notice_id=notice_id,
        incident_id=notice["incident_id"],
        channel=None,
        at=now,
        outcomes=[Outcome(p.subject_id, p.status, reason=p.reason, detail=p.detail) for p in new],
    )
    receipts = [
        {
            "_id": ids.receipt_id(notice_id, p.subject_id),
            "notice_id": notice_id,
            "incident_id": notice["incident_id"],
            "subject_id": p.subject_id,
            "also_subject_ids": list(p.also_subject_ids),
            "channel": None,
            "attempt": attempt_id,
            "created_at": now,
        }
        for p in new
    ]
    delta = Delta()
    for p in new:
        delta.add(None, p.status)

    async def work(session: AsyncClientSession) -> None:
        await store.attempts.insert_one(doc, session=session)
        await store.receipts.insert_many(receipts, ordered=False, session=session)
        await counters.add(store, notice_id, delta, shard=shard, session=session)

    try:
        await store.in_transaction(work)
    except (DuplicateKeyError, BulkWriteError) as exc:
        if not _duplicates_only(exc):
            raise
        # Written by an earlier run of this step, or a receipt created meanwhile: the
        # transaction wrote nothing; what is there stays.
        return 0
    return len(new)


def _duplicates_only(exc: DuplicateKeyError | BulkWriteError) -> bool:
    if isinstance(exc, DuplicateKeyError):
        return True
    return all(e["code"] == DUPLICATE_KEY for e in exc.details["writeErrors"])


class Checkpoint:
    """The segmenter's checkpoint and progress counts, saved together every
    ``every_s`` rather than with every step.

    A step's counts are added in the same write that moves the checkpoint past
    it, so a step published again after a crash (everything after the last
    saved checkpoint is) is counted once. Saving once a second instead of once
    a step costs a restart at most a second of batches published again, which
    the delivery claims make harmless, and saves the database a write per step.
    """

    def __init__(self, store: Store, notice_id: str, every_s: float = CHECKPOINT_EVERY_S):
        self.store = store
        self.notice_id = notice_id
        self.every_s = every_s
        self.increments: dict[str, int] = {}
        self.position: dict[str, Any] | None = None
        self.saved_at = time.monotonic()

    async def step(self, step: Batch) -> None:
        counts = {
            "progress.recipients_published": len(step.recipients),
            "progress.batches_published": len(step.by_channel),
            "progress.deduplicated": sum(len(r.also_subject_ids) for r in step.recipients),
            "progress.skipped_unreachable": len(step.skipped),
        }
        for channel, people in step.by_channel.items():
            counts[f"progress.by_channel.{channel}"] = len(people)
        for key, n in counts.items():
            self.increments[key] = self.increments.get(key, 0) + n
        self.position = {
            "segmenter.last_phone_hash": step.last_phone_hash,
            "segmenter.next_seq": step.seq + 1,
        }
        if time.monotonic() - self.saved_at >= self.every_s:
            await self.flush()

    async def flush(self) -> None:
        if self.position is None:
            return
        await self.store.notices.update_one(
            {"_id": self.notice_id}, {"$set": self.position, "$inc": self.increments}
        )
        self.increments, self.position = {}, None
        self.saved_at = time.monotonic()


async def _is_halted(store: Store, notice_id: str) -> bool:
    found = await store.notices.find_one({"_id": notice_id}, {"state": 1})
    return found is None or found.get("state") == states.NOTICE_HALTED


def _not_reached(step: Batch) -> list[Decided]:
    """Everyone of ``step``, not published because the notice was halted."""
    halted = "the notice was halted"
    people = [
        Decided(r.subject_id, r.also_subject_ids, states.HALTED, detail=halted)
        for r in step.recipients
    ]
    people += [
        Decided(s.subject_id, s.also_subject_ids, states.HALTED, detail=halted)
        for s in step.skipped
    ]
    return people


async def _skip_people_without_phone(
    store: Store, notice: dict[str, Any], query: dict[str, Any], *, shard: str
) -> int:
    """Give everyone in the audience with no phone number a ``skipped`` receipt."""
    total = 0
    chunk: list[Skipped] = []
    # phone_hash first and beside the audience's own fields (never phone_hash), not
    # in an $and: a planner that takes the first indexed field then reads only
    # the people without a number (SecantusDB: 0.01 s instead of 3.3 s at 100,000).
    async for doc in store.subjects.find({"phone_hash": None, **query}, {"_id": 1}):
        total += 1
        chunk.append(_skipped(Skipped(doc["_id"], (), NO_PHONE, "no phone number")))
        if len(chunk) >= 1000:
            await _write_decided(store, notice, chunk, shard=shard)
            chunk = []
    await _write_decided(store, notice, chunk, shard=shard)
    RESOLVED.labels("skipped_no_phone").inc(total)
    return total


async def segment_notice(
    store: Store,
    bus: Bus,
    *,
    notice_id: str,
    batch_size: int,
    keyring: Keyring,
    shards: Shards | None = None,
) -> None:
    shards = shards or Shards.for_process("segmenter", slots=1)
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

    async with shards.take() as shard:
        await _segment(store, bus, notice, query, checkpoint, batch_size, keyring, shard)


async def _segment(
    store: Store,
    bus: Bus,
    notice: dict[str, Any],
    query: dict[str, Any],
    checkpoint: dict[str, Any],
    batch_size: int,
    keyring: Keyring,
    shard: str,
) -> None:
    notice_id = notice["_id"]
    if not checkpoint.get("no_phone_done"):
        skipped = await _skip_people_without_phone(store, notice, query, shard=shard)
        await store.notices.update_one(
            {"_id": notice_id},
            {"$set": {"segmenter.no_phone_done": True, "progress.skipped_no_phone": skipped}},
        )

    halted = False
    saved = Checkpoint(store, notice_id)
    halt_checked = float("-inf")
    async for step in batches(
        _stream(store, query, checkpoint.get("last_phone_hash", ""), keyring, notice_id),
        size=batch_size,
        first_seq=checkpoint.get("next_seq", 1),
        channels=notice.get("channels") or DEFAULT_PREFERENCE,
    ):
        if not halted and time.monotonic() - halt_checked >= HALT_CHECK_S:
            halt_checked = time.monotonic()
            if await _is_halted(store, notice_id):
                halted = True
        if halted:
            # Everyone not yet published is told nothing and gets a halted receipt.
            halted = True
            await _write_decided(store, notice, _not_reached(step), shard=shard)
            continue
        await _write_decided(store, notice, [_skipped(s) for s in step.skipped], shard=shard)
        for channel, people in step.by_channel.items():
            message = DeliveryBatch(
                batch_id=ids.batch_id(notice_id, channel, step.seq),
                notice_id=notice_id,
                incident_id=notice["incident_id"],
                channel=channel,
                recipients=tuple(people),
            )
            await bus.publish(
                topology.DELIVERY, channel, message.to_bytes(), message_id=message.batch_id
            )
        published = len(step.recipients)
        deduped = sum(len(r.also_subject_ids) for r in step.recipients)
        # The checkpoint moves only after everything up to it is published.
        await saved.step(step)
        BATCHES.inc(len(step.by_channel))
        RESOLVED.labels("published").inc(published)
        RESOLVED.labels("deduplicated").inc(deduped)
        for skipped in step.skipped:
            RESOLVED.labels(f"skipped_{skipped.reason}").inc()

    await saved.flush()
    await staff.announce(
        bus, notice_id=notice_id, incident_id=notice["incident_id"], stage="started"
    )
    if halted:
        log.info("notice halted; segmentation stopped", extra={"notice_id": notice_id})
        return
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
