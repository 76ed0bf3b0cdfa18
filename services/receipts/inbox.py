"""The report inbox: delivery reports kept as they arrive, until they are applied.

A provider's request of up to 1,000 reports is kept as one document of
``report_requests`` (the reports) and one small entry of ``report_inbox``
(when it is due, who applies it), both with the same id (:func:`take_in`), and
the request is answered at once: the reports are durable, so the provider has
nothing to retry. Appliers look only at the small entries, so finding the
next due request never reads a thousand reports. The applier
(:mod:`alimi_receipts.applier`) takes the due entries, several at a time, and
applies them; reports whose receipt has not caught up yet (the provider answered
faster than delivery recorded its attempt) stay, and the document is due
again a little later.

Each entry has one owner at a time: :func:`take` moves its ``due_at``
forward by the lease, so a second applier (here or in another replica) does
not see it as due; an owner that dies leaves it to be taken again once the
lease is over, and applying an entry twice changes nothing
(:mod:`alimi_receipts.applier`).
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo.asynchronous.client_session import AsyncClientSession

from alimi import ids
from alimi.phone import mask_in_text
from alimi.store import Store
from alimi_receipts.models import Report

OWNER = f"{socket.gethostname()}:{os.getpid()}"
TAKE_ENTRIES = 50  # inbox entries looked at per take
TAKE_REPORTS = 5000  # reports applied together at most (one insert, one transaction)


def stored(report: Report) -> dict[str, Any]:
    """A report as the inbox keeps it: the provider's words with any phone number masked;
    ``recipientNo`` is never read."""
    return {
        "message_id": report.message_id,
        "grouping_key": report.grouping_key,
        "status": report.receipt_status,
        "code": report.result_code,
        "message": mask_in_text(report.result_message),
        "delivered_at": report.delivered_at,
    }


async def take_in(
    store: Store, channel: str, reports: Sequence[Report], *, apply_after_s: float
) -> str:
    """Keep ``reports`` (one request) durably; the inbox document's id."""
    now = datetime.now(UTC)
    inbox_id = ids.new_id("rpt")
    # The reports first: an entry never points at nothing (a crash between the two
    # leaves reports nobody applies, and the provider, unanswered, sends them again).
    await store.report_requests.insert_one(
        {"_id": inbox_id, "reports": [stored(r) for r in reports]}
    )
    await store.report_inbox.insert_one(
        {
            "_id": inbox_id,
            "channel": channel,
            "received_at": now,
            "due_at": now + timedelta(seconds=apply_after_s),
            "tries": 0,
            "n": len(reports),
        }
    )
    return inbox_id


async def take(
    store: Store,
    *,
    lease_s: float,
    most_reports: int = TAKE_REPORTS,
    owner: str = OWNER,
) -> list[dict[str, Any]]:
    """The oldest due entries, up to about ``most_reports`` reports, each with its
    ``reports``; now this taker's for ``lease_s`` (``owner`` on each names this take).
    Empty if none is due.

    Under load many small requests are due at once, and applying them together
    costs one lookup, one insert and one transaction instead of one each.
    """
    now = datetime.now(UTC)
    due = await store.report_inbox.find(
        {"due_at": {"$lte": now}}, {"n": 1}, sort=[("due_at", 1)], limit=TAKE_ENTRIES
    ).to_list()
    picked: list[str] = []
    reports = 0
    for entry in due:
        if picked and reports + int(entry.get("n") or 0) > most_reports:
            break
        picked.append(entry["_id"])
        reports += int(entry.get("n") or 0)
    if not picked:
        return []
    token = f"{owner}#{secrets.token_hex(4)}"
    # Only entries still due: another taker that got there first moved their due_at on.
    await store.report_inbox.update_many(
        {"_id": {"$in": picked}, "due_at": {"$lte": now}},
        {"$set": {"due_at": now + timedelta(seconds=lease_s), "owner": token}},
    )
    mine = await store.report_inbox.find({"_id": {"$in": picked}, "owner": token}).to_list()
    kept = {
        doc["_id"]: doc.get("reports") or []
        async for doc in store.report_requests.find({"_id": {"$in": [e["_id"] for e in mine]}})
    }
    return [{**entry, "reports": kept.get(entry["_id"], [])} for entry in mine]


async def keep_waiting(
    store: Store,
    doc: dict[str, Any],
    waiting: list[dict[str, Any]],
    *,
    retry_in_s: float,
    session: AsyncClientSession,
) -> bool:
    """Keep only the ``waiting`` reports of ``doc``, due again in ``retry_in_s``; False if
    ``doc`` is no longer this owner's (its lease ran out and another took it)."""
    result = await store.report_inbox.update_one(
        {"_id": doc["_id"], "owner": doc.get("owner")},
        {
            "$set": {
                "n": len(waiting),
                "due_at": datetime.now(UTC) + timedelta(seconds=retry_in_s),
            },
            "$inc": {"tries": 1},
            "$unset": {"owner": ""},
        },
        session=session,
    )
    if result.matched_count != 1:
        return False
    if len(waiting) < len(doc.get("reports") or ()):
        await store.report_requests.update_one(
            {"_id": doc["_id"]}, {"$set": {"reports": waiting}}, session=session
        )
    return True


async def done(store: Store, doc: dict[str, Any], *, session: AsyncClientSession) -> bool:
    """Remove ``doc``; False if it is no longer this owner's."""
    result = await store.report_inbox.delete_one(
        {"_id": doc["_id"], "owner": doc.get("owner")}, session=session
    )
    if result.deleted_count != 1:
        return False
    await store.report_requests.delete_one({"_id": doc["_id"]}, session=session)
    return True


async def backlog(store: Store) -> tuple[int, int]:
    """(documents, reports) in the inbox: what is not applied yet."""
    documents = reports = 0
    async for doc in store.report_inbox.find({}, {"n": 1}):
        documents += 1
        reports += int(doc.get("n") or 0)
    return documents, reports
