"""Delivery's claim store: claim before send, record after, nobody told twice.

A worker handles a batch as one *attempt* (:func:`alimi.ids.attempt_id`).
It first claims the batch's people: one unordered ``insert_many`` of receipts
naming the attempt (:func:`claim_new`). On a first attempt nobody has a
receipt, so that is the only write per person, and nothing is read. The
outcomes are then written as one attempt document (:func:`record`, see
:mod:`alimi.attempts`) with the counters it changes, in one transaction.

A person whose insert collided on ``_id`` already has a receipt. Where they
stand (:func:`standings`) decides what happens:

* ``retrying``, ``halted`` (the notice was resumed) or, for the channel they
  fell back to, ``fell_back``: the receipt is taken over (:func:`take_over`,
  conditional on the attempt it still names, so two workers never both win);
* an attempt that may have reached the provider — ``retrying`` with
  ``in_doubt`` (a timeout), a claim whose worker is gone (its heartbeat is
  over, :mod:`heartbeat`), a claim older than the lease whose attempt was
  never written, or a claim of an attempt this very process saw end without
  its record (the database failed mid-way: the broker redelivers the batch
  at once): the provider is asked first by the receipt id; found, it is
  recorded ``sent`` (:func:`settle`), else taken over;
* a fresh claim of a live worker: held; the caller parks them for a few
  seconds and looks again;
* anything else is final: not sent again.

Every filter is ``_id`` (``$in`` of at most a batch) plus plain fields: a
query planner may serve ``{_id, $or}`` with a collection scan (the
development database does), and every read of a batch's receipts is one query.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import BulkWriteError

from alimi import attempts, counters, decisions, duplicate_keys, ids, phone, states
from alimi.attempts import Outcome
from alimi.counters import Delta
from alimi.decisions import Where
from alimi.messages import DeliveryBatch, Recipient
from alimi.receipt_view import attempts_by_id, chunks
from alimi.store import Store

# Channels people fall back to; they may take over a receipt another channel handed over.
FALLBACK_TARGETS = frozenset({"sms"})


@dataclass(frozen=True)
class Standing:
    """Where a person who already has a receipt stands."""

    recipient: Recipient
    receipt: dict[str, Any]
    attempt: dict[str, Any] | None  # the receipt's current attempt, if written
    entry: dict[str, Any] | None  # that attempt's entry for the person

    @property
    def subject_id(self) -> str:
        return self.recipient.subject_id

    @property
    def status(self) -> str:
        return attempts.status_of(self.entry)

    @property
    def channel(self) -> str:
        return str(
            (self.attempt or {}).get("channel")
            or self.receipt.get("channel")
            or attempts.NO_CHANNEL
        )

    @property
    def attempt_id(self) -> str:
        return str(self.receipt.get("attempt") or "")

    @property
    def in_doubt(self) -> bool:
        return self.status == states.RETRYING and bool((self.entry or {}).get("in_doubt"))

    @property
    def worker(self) -> str | None:
        """The worker whose claim this is (its heartbeat's owner), if the claim names one."""
        worker = self.receipt.get("worker")
        return str(worker) if worker and self.status == states.CLAIMED else None

    def stale(self, before: datetime) -> bool:
        """A claim whose attempt was never written, made before ``before``: its worker died."""
        claimed_at = self.receipt.get("claimed_at")
        return (
            self.status == states.CLAIMED
            and isinstance(claimed_at, datetime)
            and claimed_at < before
        )

    def claimable_by(self, channel: str) -> bool:
        """Can a worker of ``channel`` take this person over without asking the provider?"""
        if self.status == states.RETRYING:
            return not self.in_doubt
        if self.status == states.HALTED:
            return True
        return (
            self.status == states.FELL_BACK
            and channel in FALLBACK_TARGETS
            and (self.entry or {}).get("fallback_to") == channel
        )

    def where(self, notice_id: str) -> Where:
        return Where(
            ids.receipt_id(notice_id, self.subject_id),
            self.subject_id,
            self.attempt_id,
            self.status,
            self.channel,
        )

    def dead_lettered_by(self, batch_id: str) -> bool:
        """Given up on by this very batch (whose dead letter may not have been published)."""
        return (
            bool((self.entry or {}).get("dead_lettered"))
            and (self.attempt or {}).get("batch_id") == batch_id
        )


@dataclass(frozen=True)
class Claimant:
    """Who claims: the attempt, its provider and the worker (its heartbeat's owner)."""

    attempt_id: str
    provider: str
    worker: str


def _claim_fields(batch: DeliveryBatch, by: Claimant, now: datetime) -> dict[str, Any]:
    return {
        "attempt": by.attempt_id,
        "channel": batch.channel,
        "provider": by.provider,
        "worker": by.worker,
        "batch_id": batch.batch_id,
        "claimed_at": now,
    }


def _receipt(batch: DeliveryBatch, r: Recipient, by: Claimant, now: datetime) -> dict[str, Any]:
    return {
        "_id": ids.receipt_id(batch.notice_id, r.subject_id),
        "notice_id": batch.notice_id,
        "incident_id": batch.incident_id,
        "subject_id": r.subject_id,
        "also_subject_ids": list(r.also_subject_ids),
        "destination": phone.mask(r.phone),
        "created_at": now,
        **_claim_fields(batch, by, now),
    }


async def claim_new(
    store: Store, batch: DeliveryBatch, *, by: Claimant, now: datetime
) -> list[Recipient]:
    """Insert a receipt claimed ``by`` an attempt for everyone in the batch; return those
    who already had one (their insert collided): on a first attempt, nobody."""
    people = list(batch.recipients)
    try:
        await store.receipts.insert_many(
            [_receipt(batch, r, by, now) for r in people], ordered=False
        )
    except BulkWriteError as exc:
        return [people[i] for i in duplicate_keys.collided(exc)]
    return []


async def standings(store: Store, notice_id: str, people: Sequence[Recipient]) -> list[Standing]:
    """Where each of ``people`` (who have a receipt) stands, in their order."""
    by_id = {ids.receipt_id(notice_id, r.subject_id): r for r in people}
    receipts: dict[str, dict[str, Any]] = {}
    for part in chunks(list(by_id)):
        async for doc in store.receipts.find({"_id": {"$in": part}}):
            receipts[doc["_id"]] = doc
    found = await attempts_by_id(store, (d.get("attempt") for d in receipts.values()))
    result = []
    for rid, recipient in by_id.items():
        receipt = receipts.get(rid)
        if receipt is None:  # removed between the insert and this read: nothing to stand on
            continue
        attempt = found.get(receipt.get("attempt") or "")
        result.append(
            Standing(recipient, receipt, attempt, attempts.entry_for(attempt, recipient.subject_id))
        )
    return result


async def take_over(
    store: Store,
    batch: DeliveryBatch,
    people: Sequence[Standing],
    *,
    by: Claimant,
    now: datetime,
    shard: str,
) -> set[str]:
    """Claim ``people`` for ``by``'s attempt, each only if their receipt still names the attempt
    it stood on; the subject ids this worker now owns.

    One transaction: the conditional updates (one per earlier attempt and
    status), the counters they change (those people leave their status), and
    the read of what was won.
    """
    if not people:
        return set()
    groups: dict[tuple[str, str, str], list[Standing]] = defaultdict(list)
    for s in people:
        groups[(s.attempt_id, s.status, s.channel)].append(s)

    async def work(session: AsyncClientSession) -> set[str]:
        delta = Delta()
        for (old_attempt, status, channel), group in groups.items():
            update: dict[str, Any] = {
                "$set": _claim_fields(batch, by, now),
                "$push": {"history": old_attempt},
            }
            if status == states.FELL_BACK:
                update["$set"]["fallback_from"] = channel
            result = await store.receipts.update_many(
                {
                    "_id": {"$in": [ids.receipt_id(batch.notice_id, s.subject_id) for s in group]},
                    "attempt": old_attempt,
                },
                update,
                session=session,
            )
            delta.add(channel, status, -result.modified_count)
        await counters.add(store, batch.notice_id, delta, shard=shard, session=session)
        won = store.receipts.find(
            {
                "_id": {"$in": [ids.receipt_id(batch.notice_id, s.subject_id) for s in people]},
                "attempt": by.attempt_id,
            },
            {"subject_id": 1},
            session=session,
        )
        return {doc["subject_id"] async for doc in won}

    return await store.in_transaction(work)


def outcome_delta(channel: str, outcomes: Iterable[Outcome]) -> Delta:
    """What an attempt's outcomes add to the counts (its people were ``claimed``)."""
    delta = Delta()
    for o in outcomes:
        delta.add(channel, o.status)
        if o.status == states.FELL_BACK:
            delta.handed_over(channel)
    return delta


def outcomes_of(doc: dict[str, Any]) -> list[Outcome]:
    """The outcomes an attempt document records, one per person."""
    return [Outcome(subject_id=e["subject_id"], status=e["status"]) for e in doc.get("people", ())]


async def record(
    store: Store, doc: dict[str, Any], *, shard: str, delta: Delta | None = None
) -> None:
    """Insert an attempt document and add its outcomes to the counters, in one transaction."""
    change = delta if delta is not None else outcome_delta(doc["channel"], outcomes_of(doc))

    async def work(session: AsyncClientSession) -> None:
        await store.attempts.insert_one(doc, session=session)
        await counters.add(store, doc["notice_id"], change, shard=shard, session=session)

    await store.in_transaction(work)


async def record_if_held(store: Store, doc: dict[str, Any], *, shard: str) -> set[str]:
    """Record an attempt its worker could not vouch for until now: another worker may have
    taken some of its people over meanwhile (and counted them). The subject ids recorded.

    The record gets an id of its own, and each person's receipt moves to it from the
    claim only if it still names the claim, in one transaction with the counts of those
    who moved: a take-over committed first leaves its people out, and one committing
    later no longer finds the claim (each conditional on the claim, so the two conflict
    and one runs again)."""
    claim = doc["_id"]
    moved = {**doc, "_id": ids.attempt_id(doc["batch_id"]), "claim": claim}
    receipt_ids = [ids.receipt_id(doc["notice_id"], e["subject_id"]) for e in doc["people"]]

    async def work(session: AsyncClientSession) -> set[str]:
        held: set[str] = set()
        for part in chunks(receipt_ids):
            await store.receipts.update_many(
                {"_id": {"$in": part}, "attempt": claim},
                {"$set": {"attempt": moved["_id"]}, "$push": {"history": claim}},
                session=session,
            )
            found = store.receipts.find(
                {"_id": {"$in": part}, "attempt": moved["_id"]}, {"subject_id": 1}, session=session
            )
            held.update([d["subject_id"] async for d in found])
        await store.attempts.insert_one(moved, session=session)
        outcomes = [o for o in outcomes_of(moved) if o.subject_id in held]
        change = outcome_delta(moved["channel"], outcomes)
        await counters.add(store, moved["notice_id"], change, shard=shard, session=session)
        return held

    return await store.in_transaction(work)


async def settle(
    store: Store,
    batch: DeliveryBatch,
    found: Sequence[tuple[Standing, str]],
    *,
    provider: str,
    now: datetime,
    shard: str,
) -> None:
    """Record as ``sent`` the people whose attempt in doubt the provider has: one attempt
    per channel, the receipts moved to it and the counts, in one transaction each."""
    by_channel: dict[str, list[tuple[Standing, str]]] = defaultdict(list)
    for standing, message_id in found:
        by_channel[standing.channel].append((standing, message_id))
    for channel, group in by_channel.items():
        outcomes = [
            Outcome(
                subject_id=s.subject_id,
                status=states.SENT,
                message_id=message_id,
                detail=f"{message_id} (found at the provider; not sent again)",
                extra={"settled_from": s.attempt_id},
            )
            for s, message_id in group
        ]
        doc = attempts.document(
            ids.attempt_id(f"{batch.batch_id}:settle"),
            kind=attempts.SETTLE,
            notice_id=batch.notice_id,
            incident_id=batch.incident_id,
            channel=channel,
            provider=provider,
            batch_id=batch.batch_id,
            attempt=batch.attempt,
            at=now,
            outcomes=outcomes,
        )
        await decisions.decide(
            store, doc, [s.where(batch.notice_id) for s, _ in group], shard=shard
        )
