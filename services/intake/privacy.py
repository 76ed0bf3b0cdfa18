"""Personal data in the subject directory: key rotation and the purge after retention.

**Re-keying** (:func:`rekey_subjects`) re-encrypts every phone number not yet
under the current key, in chunks of one bulk write each, and encrypts the
clear numbers older versions stored in ``phone``. Each write only applies if
the value is still the one read, so an import running meanwhile is never
overwritten with an older number. Running it again finds nothing to do: it is
idempotent and can be stopped and restarted at any point.

**Purging** (:func:`purge_contact_data`) removes the contact data — encrypted
number, lookup hash, masked number, name — of everyone an incident's notices
were addressed to (the subjects of its receipts), once the incident is
``resolved`` or its retention period since it was opened has passed. Receipts
and counts stay as they are: they are the proof that people were told.
People whom another incident still open (and within its retention) addresses
keep their contact data; its id is in the answer. The notices' dead letters
(batches given up on, numbers in clear) are discarded first
(``dead_letters.discard``), so a purge leaves no number of theirs in the broker.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import UpdateOne

from alimi import phone as phones
from alimi import states
from alimi.audience import AudienceSpec, to_query
from alimi.bus import Bus
from alimi.crypto import Keyring, Unreadable
from alimi.store import Store
from alimi_intake import dead_letters
from alimi_intake.repository import LEGACY_CLEAR_PHONE

log = logging.getLogger("alimi.intake.privacy")

CONTACT_FIELDS = ("phone_enc", "phone_hash", "phone_masked", "name", LEGACY_CLEAR_PHONE)
RESOLVED = "resolved"
# A notice in one of these states may still need its people's numbers.
NOTICES_IN_FLIGHT = (
    states.NOTICE_PENDING_APPROVAL,
    states.NOTICE_APPROVED,
    states.NOTICE_SEGMENTING,
    states.NOTICE_SENDING,
)
CHUNK = 1000


def _now() -> datetime:
    return datetime.now(UTC)


# --- re-keying -------------------------------------------------------------------------


@dataclass
class Rekeyed:
    scanned: int = 0
    rekeyed: int = 0  # re-encrypted from an older key
    encrypted: int = 0  # clear numbers of older versions, now encrypted
    unreadable: int = 0  # left as they are, each logged
    current_key: str = ""


def _rekey_op(doc: dict[str, Any], keyring: Keyring) -> tuple[str, UpdateOne | None]:
    """What to write for one subject: ("rekeyed" | "encrypted" | "unreadable", op)."""
    subject_id = doc["_id"]
    if LEGACY_CLEAR_PHONE in doc:
        clear = doc[LEGACY_CLEAR_PHONE]
        # A subject can hold both (an import raced an older writer): the clear one goes.
        update: dict[str, Any] = {"$unset": {LEGACY_CLEAR_PHONE: ""}}
        if isinstance(clear, str) and clear and doc.get("phone_enc") is None:
            update["$set"] = {"phone_enc": phones.seal(keyring, subject_id, clear)}
        return "encrypted", UpdateOne({"_id": subject_id, LEGACY_CLEAR_PHONE: clear}, update)
    sealed = doc["phone_enc"]
    try:
        number = phones.unseal(keyring, subject_id, sealed)
    except Unreadable as exc:
        log.error(
            "phone number cannot be decrypted; left as it is",
            extra={"subject_id": subject_id, "reason": exc.reason, "key_id": exc.key_id},
        )
        return "unreadable", None
    return "rekeyed", UpdateOne(
        {"_id": subject_id, "phone_enc.k": sealed["k"], "phone_enc.n": sealed["n"]},
        {"$set": {"phone_enc": phones.seal(keyring, subject_id, number)}},
    )


async def rekey_subjects(store: Store, keyring: Keyring, *, chunk: int = CHUNK) -> Rekeyed:
    """Re-encrypt every subject's phone number under ``keyring.current``."""
    result = Rekeyed(current_key=keyring.current)
    stale = {
        "$or": [
            {"phone_enc.k": {"$exists": True, "$ne": keyring.current}},
            {LEGACY_CLEAR_PHONE: {"$exists": True}},
        ]
    }
    projection = {"_id": 1, "phone_enc": 1, LEGACY_CLEAR_PHONE: 1}
    after: str | None = None
    while True:
        page = stale if after is None else {"$and": [stale, {"_id": {"$gt": after}}]}
        docs = await store.subjects.find(page, projection).sort("_id", 1).limit(chunk).to_list()
        if not docs:
            break
        after = docs[-1]["_id"]
        ops = []
        for doc in docs:
            outcome, op = _rekey_op(doc, keyring)
            result.scanned += 1
            if op is None:
                result.unreadable += 1
                continue
            ops.append(op)
            setattr(result, outcome, getattr(result, outcome) + 1)
        if ops:
            await store.subjects.bulk_write(ops, ordered=False)
    log.info("subjects re-keyed", extra=asdict(result))
    return result


# --- purge after retention -------------------------------------------------------------


class IncidentNotFound(LookupError):
    pass


class PurgeRefused(Exception):
    """The incident's contact data must still be kept; the message says until when."""


@dataclass
class Purged:
    incident_id: str
    purged_at: datetime
    subjects_purged: int = 0
    kept_for_open_incidents: set[str] = field(default_factory=set)
    dead_letters_discarded: int = 0  # people in discarded dead-letter batches
    dead_letters_remain: bool = False  # a queue was too long to scan in one call

    def as_json(self) -> dict[str, Any]:
        return {
            "incident_id": self.incident_id,
            "purged_at": self.purged_at.isoformat(),
            "subjects_purged": self.subjects_purged,
            "kept_for_open_incidents": sorted(self.kept_for_open_incidents),
            "dead_letters_discarded": self.dead_letters_discarded,
            "dead_letters_remain": self.dead_letters_remain,
        }


def purgeable_from(incident: dict[str, Any], retention: timedelta) -> datetime | None:
    """When the incident's contact data may go: None if now (it is resolved)."""
    if incident.get("status") == RESOLVED:
        return None
    opened: datetime = incident["created_at"]
    return opened + retention


async def _open_audiences(
    store: Store, incident_id: str, *, retention: timedelta, now: datetime
) -> dict[str, dict[str, Any]]:
    """Other incidents still open and within retention -> the subjects they address."""
    others = store.incidents.find(
        {
            "_id": {"$ne": incident_id},
            "status": {"$ne": RESOLVED},
            "created_at": {"$gt": now - retention},
        },
        {"_id": 1},
    )
    audiences: dict[str, dict[str, Any]] = {}
    async for other in others:
        queries = [
            to_query(AudienceSpec.model_validate(n["audience"]))
            async for n in store.notices.find({"incident_id": other["_id"]}, {"audience": 1})
            if n.get("audience")
        ]
        if queries:
            audiences[other["_id"]] = queries[0] if len(queries) == 1 else {"$or": queries}
    return audiences


async def _addressed(store: Store, notice_ids: list[str]) -> AsyncIterator[list[str]]:
    """The subject ids of the notices' receipts, in chunks (deduplicated within each)."""
    chunk: dict[str, None] = {}
    cursor = store.receipts.find(
        {"notice_id": {"$in": notice_ids}}, {"subject_id": 1, "also_subject_ids": 1}
    ).batch_size(CHUNK)
    async for receipt in cursor:
        for subject_id in (receipt["subject_id"], *receipt.get("also_subject_ids", ())):
            chunk[subject_id] = None
        if len(chunk) >= CHUNK:
            yield list(chunk)
            chunk = {}
    if chunk:
        yield list(chunk)


async def check_purge(
    store: Store, incident_id: str, *, retention_days: int, now: datetime | None = None
) -> list[str]:
    """The ids of the incident's notices, if its contact data may be purged now.

    Raises :class:`IncidentNotFound`, or :class:`PurgeRefused` while the incident is
    open and within its retention, or while one of its notices may still send.
    """
    now = now or _now()
    retention = timedelta(days=retention_days)
    incident = await store.incidents.find_one({"_id": incident_id})
    if incident is None:
        raise IncidentNotFound(incident_id)
    allowed_from = purgeable_from(incident, retention)
    if allowed_from is not None and now < allowed_from:
        raise PurgeRefused(
            f"the incident is {incident.get('status')}: its people's contact data is kept until "
            f"it is resolved or until {allowed_from.date().isoformat()} "
            f"({retention_days} days after it was opened)"
        )
    notices = await store.notices.find({"incident_id": incident_id}, {"state": 1}).to_list()
    in_flight = [n for n in notices if n.get("state") in NOTICES_IN_FLIGHT]
    if in_flight:
        busy = ", ".join(f"{n['_id']} ({n['state']})" for n in in_flight)
        raise PurgeRefused(
            f"notices of this incident may still send: {busy}; purge once each is "
            "completed, halted or failed"
        )
    return [n["_id"] for n in notices]


# Told the counts so far after each chunk of subjects (a job's progress).
Counted = Callable[["Purged"], Awaitable[None]]


async def purge_contact_data(
    store: Store,
    bus: Bus,
    incident_id: str,
    *,
    retention_days: int,
    now: datetime | None = None,
    after_chunk: Counted | None = None,
) -> Purged:
    """Remove the contact data of the people the incident's notices addressed.

    Checks first, raising as :func:`check_purge` does.
    """
    now = now or _now()
    retention = timedelta(days=retention_days)
    notice_ids = await check_purge(store, incident_id, retention_days=retention_days, now=now)
    result = Purged(incident_id=incident_id, purged_at=now)
    try:
        discarded = await dead_letters.discard(store, bus, notice_ids)
    except dead_letters.Busy as exc:
        raise PurgeRefused(str(exc)) from None
    result.dead_letters_discarded = discarded.recipients
    result.dead_letters_remain = discarded.more_remain
    open_audiences = await _open_audiences(store, incident_id, retention=retention, now=now)
    update = {
        "$unset": dict.fromkeys(CONTACT_FIELDS, ""),
        "$set": {"contact_purged_at": now, "contact_purged_for": incident_id},
    }
    async for subject_ids in _addressed(store, notice_ids):
        selected: dict[str, Any] = {
            "_id": {"$in": subject_ids},
            "contact_purged_at": {"$exists": False},
        }
        if open_audiences:
            selected["$nor"] = list(open_audiences.values())
            for other, query in open_audiences.items():
                if other in result.kept_for_open_incidents:
                    continue
                if await store.subjects.find_one({"$and": [{"_id": {"$in": subject_ids}}, query]}):
                    result.kept_for_open_incidents.add(other)
        written = await store.subjects.update_many(selected, update)
        result.subjects_purged += written.modified_count
        if after_chunk is not None:
            await after_chunk(result)

    await store.incidents.update_one(
        {"_id": incident_id},
        {
            "$set": {"contact_purged_at": now},
            "$inc": {"contact_purged_subjects": result.subjects_purged},
        },
    )
    log.info(
        "contact data purged",
        extra={
            "incident_id": incident_id,
            "subjects": result.subjects_purged,
            "kept_for_open_incidents": sorted(result.kept_for_open_incidents),
            "dead_letters_discarded": result.dead_letters_discarded,
        },
    )
    return result
