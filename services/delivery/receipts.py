"""Receipt writes of the delivery service: claim before send, record after, in bulk.

A receipt's ``_id`` is ``{notice_id}:{subject_id}``. Claiming first inserts
the receipts of the batch, already ``claimed`` (:func:`claim_new`, one
unordered ``insert_many``: on a first attempt nobody has a receipt, and an
insert costs the database a fifth of an upsert). Only the people whose insert
collided on ``_id`` go on (:func:`claim_existing`) to the conditional upserts,
whose filters match a ``retrying`` receipt, (for the channel a person falls
back to) a ``fell_back`` one, or a ``claimed`` one whose claim is older than
the lease (its worker died): for a receipt that is claimed by a live worker or
final the upsert collides again (duplicate key) and that person is not sent
to again. A first attempt costs one write per person and no read.

Every write filter here is ``_id`` plus plain fields, never a top-level
``$or``, and every read asks for ``_id`` alone and sorts the answer here: a
query planner may serve ``{_id, $or}``, or ``{_id: {$in}}`` beside another
field, with a collection scan (SecantusDB, the MongoDB-wire server of
development and tests, does), which made each batch cost a pass over every
receipt of the notice.

Before a stale claim or an attempt that ended in doubt (a timeout: the
provider may have taken the message) is claimed again, the provider is asked
whether it has a message with the receipt's id (:func:`in_doubt` over the
people who already had a receipt, then :func:`found_at_provider`):
effectively once to the person, even when the broker delivers a batch twice
and a worker dies at the worst moment.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import UpdateOne
from pymongo.errors import BulkWriteError

from alimi import ids, phone, states
from alimi.messages import DeliveryBatch, Recipient
from alimi.store import Store

DUPLICATE_KEY = 11000
RETRYING = states.RETRYING
# Channels people fall back to; they may claim a receipt Kakao handed over.
FALLBACK_TARGETS = frozenset({"sms"})


def _now() -> datetime:
    return datetime.now(UTC)


def _stale(stale: datetime) -> dict[str, Any]:
    return {"status": states.CLAIMED, "claimed_at": {"$lt": stale}}


def stale_before(lease_s: float) -> datetime:
    """Claims made before this moment are past their lease (their worker died).

    One moment for a batch: the same one decides which claims the provider is
    asked about (:func:`in_doubt`) and which may be taken over
    (:func:`claim_existing`), so no claim turns stale between the two and is
    taken over without the provider having been asked.
    """
    return _now() - timedelta(seconds=lease_s)


async def in_doubt(
    store: Store, notice_id: str, recipients: Iterable[Recipient], stale: datetime
) -> list[str]:
    """Receipt ids of ``recipients`` whose last attempt may have reached the provider:
    ``retrying`` with ``in_doubt``, or ``claimed`` before ``stale``."""
    wanted = [ids.receipt_id(notice_id, r.subject_id) for r in recipients]
    if not wanted:
        return []
    found = store.receipts.find(
        {"_id": {"$in": wanted}}, {"status": 1, "in_doubt": 1, "claimed_at": 1}
    )
    return [
        doc["_id"]
        async for doc in found
        if (doc["status"] == RETRYING and doc.get("in_doubt") is True)
        or (doc["status"] == states.CLAIMED and _before(doc.get("claimed_at"), stale))
    ]


def _before(at: Any, cutoff: datetime) -> bool:
    return isinstance(at, datetime) and at < cutoff


async def found_at_provider(
    store: Store, notice_id: str, channel: str, found: dict[str, str]
) -> None:
    """Record as ``sent`` the in-doubt receipts the provider has: receipt id -> message id."""
    now = _now()
    ops = [
        UpdateOne(
            {"_id": rid, "status": {"$in": [RETRYING, states.CLAIMED]}},
            {
                "$set": {
                    "status": states.SENT,
                    "provider_message_id": message_id,
                    "sent_at": now,
                    "updated_at": now,
                },
                "$unset": {"in_doubt": ""},
                "$push": {
                    "events": {
                        "at": now,
                        "status": states.SENT,
                        "channel": channel,
                        "detail": f"{message_id} (found at the provider; not sent again)",
                    }
                },
            },
        )
        for rid, message_id in found.items()
    ]
    if ops:
        await store.receipts.bulk_write(ops, ordered=False)


async def claim_new(store: Store, batch: DeliveryBatch, provider: str) -> list[Recipient]:
    """Insert a claimed receipt for everyone in the batch; return those who already had
    one (their insert collided on ``_id``): on a first attempt, nobody."""
    people = list(batch.recipients)
    collided = await _claim(store, batch, people, None, provider, _now())
    return [people[i] for i in sorted(collided)]


async def claim_existing(
    store: Store,
    batch: DeliveryBatch,
    people: Sequence[Recipient],
    provider: str,
    *,
    stale: datetime,
) -> list[Recipient]:
    """Of ``people``, who have a receipt, claim those whose receipt is claimable; return
    those this worker now owns.

    First the claimable receipts (one upsert each); then, only for those that
    collided, the claims made before ``stale`` (taken over, the same upsert
    with the stale claim as its filter; the provider was asked about them
    first, with the same ``stale``). A receipt that matches neither collides
    each time: someone else holds it, or it is final.
    """
    now = _now()
    claimable = [RETRYING, states.HALTED]  # halted: the notice was resumed
    if batch.channel in FALLBACK_TARGETS:
        claimable.append(states.FELL_BACK)
    positions = list(range(len(people)))
    for condition in ({"status": {"$in": claimable}}, _stale(stale)):
        if not positions:
            break
        still = await _claim(store, batch, [people[i] for i in positions], condition, provider, now)
        positions = [positions[i] for i in sorted(still)]
    lost = set(positions)
    return [r for i, r in enumerate(people) if i not in lost]


def _claimed_fields(batch: DeliveryBatch, provider: str, now: datetime) -> dict[str, Any]:
    return {
        "status": states.CLAIMED,
        "channel": batch.channel,
        "provider": provider,
        "claimed_at": now,
        "batch_id": batch.batch_id,
        "updated_at": now,
    }


def _new_fields(batch: DeliveryBatch, r: Recipient, now: datetime) -> dict[str, Any]:
    return {
        "notice_id": batch.notice_id,
        "incident_id": batch.incident_id,
        "subject_id": r.subject_id,
        "also_subject_ids": list(r.also_subject_ids),
        "destination": phone.mask(r.phone),
        "attempts": 0,
        "created_at": now,
    }


def _claim_event(batch: DeliveryBatch, now: datetime) -> dict[str, Any]:
    return {"at": now, "status": states.CLAIMED, "channel": batch.channel, "detail": batch.batch_id}


def _collisions(exc: BulkWriteError) -> set[int]:
    """Positions that collided on ``_id``; any other write error is raised."""
    lost: set[int] = set()
    for err in exc.details["writeErrors"]:
        if err["code"] != DUPLICATE_KEY:
            raise exc
        lost.add(err["index"])
    return lost


async def _claim(
    store: Store,
    batch: DeliveryBatch,
    people: Sequence[Recipient],
    condition: dict[str, Any] | None,
    provider: str,
    now: datetime,
) -> set[int]:
    """Claim each of ``people``: insert a claimed receipt (``condition`` None) or upsert
    one whose receipt is missing or meets ``condition``; the positions of those whose
    receipt exists (and does not meet it): they collided on ``_id``."""
    if not people:
        return set()
    try:
        if condition is None:
            await store.receipts.insert_many(
                [
                    {
                        "_id": ids.receipt_id(batch.notice_id, r.subject_id),
                        **_claimed_fields(batch, provider, now),
                        **_new_fields(batch, r, now),
                        "events": [_claim_event(batch, now)],
                    }
                    for r in people
                ],
                ordered=False,
            )
        else:
            await store.receipts.bulk_write(
                [
                    UpdateOne(
                        {"_id": ids.receipt_id(batch.notice_id, r.subject_id), **condition},
                        {
                            "$set": _claimed_fields(batch, provider, now),
                            "$unset": {"in_doubt": ""},
                            "$setOnInsert": _new_fields(batch, r, now),
                            "$push": {"events": _claim_event(batch, now)},
                        },
                        upsert=True,
                    )
                    for r in people
                ],
                ordered=False,
            )
    except BulkWriteError as exc:
        return _collisions(exc)
    return set()


async def held(store: Store, notice_id: str, subject_ids: Sequence[str]) -> set[str]:
    """Those of ``subject_ids`` whose receipt is claimed (by a live worker, or one that died)."""
    if not subject_ids:
        return set()
    by_id = {ids.receipt_id(notice_id, s): s for s in subject_ids}
    found = store.receipts.find({"_id": {"$in": list(by_id)}}, {"status": 1})
    return {by_id[doc["_id"]] async for doc in found if doc.get("status") == states.CLAIMED}


async def handed_over(
    store: Store, notice_id: str, recipients: Iterable[Recipient], to_channel: str
) -> list[Recipient]:
    """Those of ``recipients`` whose receipt fell back to ``to_channel`` and waits there.

    A batch redelivered after its fallback was recorded but before the
    fallback batch was published (a crash) finds them here and hands them
    over again; claiming keeps that from sending twice.
    """
    by_id = {ids.receipt_id(notice_id, r.subject_id): r for r in recipients}
    if not by_id:
        return []
    found = store.receipts.find({"_id": {"$in": list(by_id)}}, {"status": 1, "fallback_to": 1})
    return [
        by_id[doc["_id"]]
        async for doc in found
        if doc.get("status") == states.FELL_BACK and doc.get("fallback_to") == to_channel
    ]


async def record(
    store: Store, notice_id: str, channel: str, outcomes: Sequence[dict[str, Any]]
) -> None:
    """Write each claimed recipient's outcome (``sent``, ``failed``, ``fell_back``, ...).

    An outcome is ``{"subject_id", "status"}`` plus any of ``message_id``,
    ``error_code``, ``error``, ``message_type``, ``detail`` (for the event) and
    ``fields`` (more to set).
    """
    now = _now()
    ops = []
    for o in outcomes:
        fields: dict[str, Any] = {"status": o["status"], "updated_at": now}
        if o.get("message_type"):
            fields["message_type"] = o["message_type"]
        if o.get("message_id"):
            fields["provider_message_id"] = o["message_id"]
            fields["sent_at"] = now
        if o.get("error_code"):
            fields["error_code"] = o["error_code"]
            fields["error"] = o.get("error")
        fields.update(o.get("fields") or {})
        event: dict[str, Any] = {"at": now, "status": o["status"], "channel": channel}
        event["detail"] = o.get("detail") or (
            f"{o['error_code']} {o.get('error') or ''}".strip()
            if o.get("error_code")
            else o.get("message_id") or ""
        )
        ops.append(
            UpdateOne(
                {"_id": ids.receipt_id(notice_id, o["subject_id"]), "status": states.CLAIMED},
                {"$set": fields, "$inc": {"attempts": 1}, "$push": {"events": event}},
            )
        )
    if ops:
        await store.receipts.bulk_write(ops, ordered=False)


async def dead_lettered(
    store: Store, notice_id: str, channel: str, subject_ids: Sequence[str], error: str
) -> None:
    """Past the last retry: the receipts are ``failed`` with the last error, and replayable."""
    now = _now()
    event = {"at": now, "status": states.FAILED, "channel": channel, "detail": error}
    await store.receipts.update_many(
        {
            "_id": {"$in": [ids.receipt_id(notice_id, s) for s in subject_ids]},
            "status": RETRYING,
        },
        {
            "$set": {
                "status": states.FAILED,
                "error": error,
                "dead_lettered": True,
                "updated_at": now,
            },
            "$push": {"events": event},
        },
    )
