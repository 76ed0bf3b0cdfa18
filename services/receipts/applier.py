"""Applying the report inbox: each report once, to the message it speaks of, in bulk.

For one inbox document (:mod:`alimi_receipts.inbox`: up to 1,000 reports of
one request), the applier

1. finds the attempts that made the reports' provider requests (one query on
   ``attempts.requests``: a report's ``messageId`` names its request), and in
   each the person's entry (:mod:`alimi.attempts`);
2. sorts every report: **accepted** if that entry is ``sent`` with the same
   provider message id; **waiting** if no attempt made the request yet but the
   person's receipt exists (delivery claims before it sends and records its
   attempt right after the provider's answer, and a fast provider can report
   first); **unknown** otherwise (no receipt: Alimi never sent it; a different
   message; a person not sent to) — logged and counted, never applied;
3. inserts one ``delivery_reports`` document per accepted report, ``_id`` the
   receipt id (one unordered ``insert_many``; a report already there is a
   **duplicate**, unless this very inbox document put it there on an earlier,
   interrupted run);
4. in one transaction, adds the changes to the notices' counters (``sent`` to
   ``delivered`` or ``undelivered``) and removes the document, or keeps only
   its waiting reports, due again after a back-off.

So a report is applied once however often it arrives or its document is
applied, and none is dropped while its receipt may still catch up: a waiting
report is given up (``expired``) only after ``ALIMI_REPORT_MAX_WAIT_S``.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import BulkWriteError

from alimi import attempts, counters, ids, states
from alimi.counters import Delta, Shards
from alimi.receipt_view import chunks
from alimi.store import Store
from alimi_receipts import inbox, metrics

log = logging.getLogger("alimi.receipts")

DUPLICATE_KEY = 11000
LOGGED_UNKNOWN = 20  # unknown reports named in one log line; the rest are only counted
BACKOFF_S = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0)


@dataclass
class Sorted:
    """What became of the reports of one inbox document."""

    accepted: list[tuple[dict[str, Any], dict[str, Any]]] = field(default_factory=list)
    waiting: list[dict[str, Any]] = field(default_factory=list)
    unknown: list[dict[str, Any]] = field(default_factory=list)
    duplicates: int = 0  # the same report twice in one request


class LeaseLost(Exception):
    """The inbox document being applied was taken over by another applier."""


def retry_in(tries: int) -> float:
    return BACKOFF_S[min(tries, len(BACKOFF_S) - 1)]


async def attempts_of_requests(
    store: Store, request_ids: Sequence[str]
) -> dict[str, list[dict[str, Any]]]:
    """request id -> the attempts that recorded messages of it."""
    found: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for part in chunks(sorted(set(request_ids))):
        async for doc in store.attempts.find(
            {"requests": {"$in": part}},
            {"notice_id": 1, "channel": 1, "people": 1, "requests": 1},
        ):
            for request in doc.get("requests", ()):
                found[request].append(doc)
    return found


def sort_reports(
    reports: Sequence[dict[str, Any]], made: dict[str, list[dict[str, Any]]]
) -> Sorted:
    """Sort ``reports`` given the attempts that made their requests (``made``)."""
    result = Sorted()
    entries: dict[str, dict[str, dict[str, Any]]] = {}
    seen: set[tuple[str, str]] = set()
    for report in reports:
        key = report.get("grouping_key")
        message_id = report["message_id"]
        if not key or ":" not in key:
            result.unknown.append(report)
            continue
        if (key, message_id) in seen:
            result.duplicates += 1
            continue
        seen.add((key, message_id))
        candidates = made.get(ids.provider_request(message_id))
        if not candidates:
            result.waiting.append(report)  # if its receipt exists: see :func:`unclaimed`
            continue
        notice_id, subject_id = key.split(":", 1)[0], ids.subject_of(key)
        match = None
        for doc in candidates:
            if doc["notice_id"] != notice_id:
                continue
            index = entries.setdefault(doc["_id"], attempts.entries(doc))
            entry = index.get(subject_id)
            if (
                entry
                and entry.get("status") == states.SENT
                and entry.get("message_id") == message_id
            ):
                match = doc
                break
        if match is None:
            result.unknown.append(report)
        else:
            result.accepted.append((report, match))
    return result


async def unclaimed(store: Store, reports: Sequence[dict[str, Any]]) -> set[str]:
    """The grouping keys of ``reports`` that name no receipt: nothing was ever claimed, so
    no attempt will ever come for them."""
    keys = sorted({r["grouping_key"] for r in reports})
    found: set[str] = set()
    for part in chunks(keys):
        async for doc in store.receipts.find({"_id": {"$in": part}}, {"_id": 1}):
            found.add(doc["_id"])
    return set(keys) - found


class Applier:
    def __init__(
        self,
        store: Store,
        *,
        lease_s: float,
        max_wait_s: float,
        shards: Shards,
    ) -> None:
        self.store = store
        self.lease_s = lease_s
        self.max_wait_s = max_wait_s
        self.shards = shards

    async def apply_next(self) -> bool:
        """Apply the oldest due inbox document; False if none was due."""
        doc = await inbox.take(self.store, lease_s=self.lease_s)
        if doc is None:
            return False
        await self.apply(doc)
        return True

    async def apply(self, doc: dict[str, Any]) -> Sorted:
        channel = doc["channel"]
        reports = doc.get("reports") or []
        made = await attempts_of_requests(
            self.store, [ids.provider_request(r["message_id"]) for r in reports]
        )
        found = sort_reports(reports, made)
        if found.waiting:
            nobody = await unclaimed(self.store, found.waiting)
            found.unknown += [r for r in found.waiting if r["grouping_key"] in nobody]
            found.waiting = [r for r in found.waiting if r["grouping_key"] not in nobody]
        new, duplicates = await self._insert(doc, found.accepted)
        expired: list[dict[str, Any]] = []
        waiting = found.waiting
        age = (datetime.now(UTC) - _utc(doc["received_at"])).total_seconds()
        if waiting and age > self.max_wait_s:
            expired, waiting = waiting, []
        delta: dict[str, Delta] = defaultdict(Delta)
        for report, attempt in new:
            delta[attempt["notice_id"]].move(
                attempt["channel"], states.SENT, attempt["channel"], report["status"]
            )

        async def work(session: AsyncClientSession) -> None:
            # The document first: if its lease ran out and another applier took it, this
            # transaction adds nothing (the other counts what this one inserted).
            if waiting:
                still_ours = await inbox.keep_waiting(
                    self.store,
                    doc,
                    waiting,
                    retry_in_s=retry_in(int(doc.get("tries") or 0)),
                    session=session,
                )
            else:
                still_ours = await inbox.done(self.store, doc, session=session)
            if not still_ours:
                raise LeaseLost(doc["_id"])
            async with self.shards.take() as shard:
                for notice_id, change in delta.items():
                    await counters.add(self.store, notice_id, change, shard=shard, session=session)

        try:
            await self.store.in_transaction(work)
        except LeaseLost:
            log.warning(
                "an inbox document's lease ran out while it was applied; its new owner counts it",
                extra={"inbox_id": doc["_id"]},
            )
            return found
        self._count(channel, doc, found, new, duplicates, waiting, expired)
        return found

    async def _insert(
        self, doc: dict[str, Any], accepted: list[tuple[dict[str, Any], dict[str, Any]]]
    ) -> tuple[list[tuple[dict[str, Any], dict[str, Any]]], int]:
        """Insert the accepted reports; (those applied now, duplicates)."""
        if not accepted:
            return [], 0
        now = datetime.now(UTC)
        docs = [
            {
                "_id": report["grouping_key"],
                "notice_id": attempt["notice_id"],
                "channel": attempt["channel"],
                "attempt": attempt["_id"],
                "message_id": report["message_id"],
                "status": report["status"],
                "code": report["code"],
                "message": report.get("message", ""),
                "delivered_at": report["delivered_at"],
                "applied_at": now,
                "inbox": doc["_id"],
            }
            for report, attempt in accepted
        ]
        try:
            await self.store.delivery_reports.insert_many(docs, ordered=False)
        except BulkWriteError as exc:
            collided = set()
            for err in exc.details["writeErrors"]:
                if err["code"] != DUPLICATE_KEY:
                    raise
                collided.add(err["index"])
            # Collisions are reports applied before, unless this document put them there
            # on an earlier run that ended before its counts were added.
            ours = await self._inserted_by(doc["_id"], [docs[i]["_id"] for i in collided])
            kept = [
                pair
                for i, pair in enumerate(accepted)
                if i not in collided or docs[i]["_id"] in ours
            ]
            return kept, len(accepted) - len(kept)
        return list(accepted), 0

    async def _inserted_by(self, inbox_id: str, receipt_ids: list[str]) -> set[str]:
        mine: set[str] = set()
        for part in chunks(receipt_ids):
            async for found in self.store.delivery_reports.find(
                {"_id": {"$in": part}}, {"inbox": 1}
            ):
                if found.get("inbox") == inbox_id:
                    mine.add(found["_id"])
        return mine

    def _count(
        self,
        channel: str,
        doc: dict[str, Any],
        found: Sorted,
        new: list[tuple[dict[str, Any], dict[str, Any]]],
        duplicates: int,
        waiting: list[dict[str, Any]],
        expired: list[dict[str, Any]],
    ) -> None:
        for outcome, n in (
            (metrics.ACCEPTED, len(new)),
            (metrics.DUPLICATE, duplicates + found.duplicates),
            (metrics.UNKNOWN, len(found.unknown)),
            (metrics.WAITING, len(waiting)),
            (metrics.EXPIRED, len(expired)),
        ):
            if n:
                metrics.REPORTS.labels(channel, outcome).inc(n)
        for report, _ in new:
            metrics.STATUS_CHANGES.labels(channel, report["status"]).inc()
        if found.unknown:
            log.warning(
                "delivery reports for no known sent message",
                extra={
                    "channel": channel,
                    "inbox_id": doc["_id"],
                    "unknown": len(found.unknown),
                    "examples": [
                        {"receipt_id": r.get("grouping_key"), "message_id": r["message_id"]}
                        for r in found.unknown[:LOGGED_UNKNOWN]
                    ],
                },
            )
        if expired:
            log.error(
                "delivery reports given up: their receipts never caught up",
                extra={
                    "channel": channel,
                    "inbox_id": doc["_id"],
                    "count": len(expired),
                    "max_wait_s": self.max_wait_s,
                },
            )


def _utc(at: datetime) -> datetime:
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at


async def run(applier: Applier, *, idle_s: float = 0.2) -> None:
    """Apply due inbox documents for the life of the process; rest briefly when none is due."""
    while True:
        try:
            if not await applier.apply_next():
                await asyncio.sleep(idle_s)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("applying delivery reports failed; will retry")
            await asyncio.sleep(1.0)
