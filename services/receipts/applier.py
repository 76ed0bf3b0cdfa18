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

from alimi import attempts, counters, duplicate_keys, ids, states
from alimi.counters import Delta, Shards
from alimi.receipt_view import chunks
from alimi.store import Store
from alimi_receipts import inbox, metrics

log = logging.getLogger("alimi.receipts")

LOGGED_UNKNOWN = 20  # unknown reports named in one log line; the rest are only counted
BACKOFF_S = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0)


@dataclass
class Sorted:
    """What became of the reports of one inbox document."""

    accepted: list[tuple[dict[str, Any], dict[str, Any]]] = field(default_factory=list)
    waiting: list[dict[str, Any]] = field(default_factory=list)
    unknown: list[dict[str, Any]] = field(default_factory=list)
    duplicates: int = 0  # the same report twice in one request


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
    reports: Sequence[dict[str, Any]],
    made: dict[str, list[dict[str, Any]]],
    *,
    seen: set[tuple[str, str]] | None = None,
) -> Sorted:
    """Sort ``reports`` given the attempts that made their requests (``made``); ``seen``
    carries the (receipt, message) pairs already sorted in the same take."""
    result = Sorted()
    entries: dict[str, dict[str, dict[str, Any]]] = {}
    seen = set() if seen is None else seen
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


@dataclass(eq=False)
class Entry:
    """One inbox entry of a take, and what became of its reports."""

    doc: dict[str, Any]
    found: Sorted = field(default_factory=Sorted)
    new: list[tuple[dict[str, Any], dict[str, Any]]] = field(default_factory=list)
    duplicates: int = 0
    expired: list[dict[str, Any]] = field(default_factory=list)

    @property
    def inbox_id(self) -> str:
        return str(self.doc["_id"])

    @property
    def channel(self) -> str:
        return str(self.doc["channel"])


class Applier:
    def __init__(
        self,
        store: Store,
        *,
        lease_s: float,
        max_wait_s: float,
        shards: Shards,
        most_reports: int = inbox.TAKE_REPORTS,
    ) -> None:
        self.store = store
        self.lease_s = lease_s
        self.max_wait_s = max_wait_s
        self.shards = shards
        self.most_reports = most_reports

    async def apply_next(self) -> bool:
        """Apply the oldest due inbox entries; False if none was due."""
        taken = await inbox.take(self.store, lease_s=self.lease_s, most_reports=self.most_reports)
        if not taken:
            return False
        await self.apply(taken)
        return True

    async def apply(self, taken: list[dict[str, Any]]) -> list[Entry]:
        """Apply the reports of ``taken`` (inbox entries, with their reports) together."""
        entries = [Entry(doc) for doc in taken]
        made = await attempts_of_requests(
            self.store,
            [ids.provider_request(r["message_id"]) for e in entries for r in e.doc["reports"]],
        )
        seen: set[tuple[str, str]] = set()
        for e in entries:
            e.found = sort_reports(e.doc["reports"], made, seen=seen)
        waiting = [r for e in entries for r in e.found.waiting]
        if waiting:
            nobody = await unclaimed(self.store, waiting)
            for e in entries:
                e.found.unknown += [r for r in e.found.waiting if r["grouping_key"] in nobody]
                e.found.waiting = [r for r in e.found.waiting if r["grouping_key"] not in nobody]
        await self._insert(entries)
        now = datetime.now(UTC)
        for e in entries:
            age = (now - _utc(e.doc["received_at"])).total_seconds()
            if e.found.waiting and age > self.max_wait_s:
                e.expired, e.found.waiting = e.found.waiting, []

        async def work(session: AsyncClientSession) -> list[Entry]:
            # Each entry first: if its lease ran out and another applier took it, its
            # counts are left to that one (which counts what this one inserted).
            kept: list[Entry] = []
            delta: dict[str, Delta] = defaultdict(Delta)
            for e in entries:
                if e.found.waiting:
                    ours = await inbox.keep_waiting(
                        self.store,
                        e.doc,
                        e.found.waiting,
                        retry_in_s=retry_in(int(e.doc.get("tries") or 0)),
                        session=session,
                    )
                else:
                    ours = await inbox.done(self.store, e.doc, session=session)
                if not ours:
                    continue
                kept.append(e)
                for report, attempt in e.new:
                    delta[attempt["notice_id"]].move(
                        attempt["channel"], states.SENT, attempt["channel"], report["status"]
                    )
            async with self.shards.take() as shard:
                for notice_id, change in delta.items():
                    await counters.add(self.store, notice_id, change, shard=shard, session=session)
            return kept

        kept = await self.store.in_transaction(work)
        for e in entries:
            if e in kept:
                self._count(e)
            else:
                log.warning(
                    "an inbox entry's lease ran out while it was applied; its new owner counts it",
                    extra={"inbox_id": e.inbox_id},
                )
        return entries

    async def _insert(self, entries: list[Entry]) -> None:
        """Insert the accepted reports of every entry; each entry's ``new`` are those applied
        now (or by an earlier run of that same entry), the others its duplicates."""
        now = datetime.now(UTC)
        accepted = [(e, report, attempt) for e in entries for report, attempt in e.found.accepted]
        if not accepted:
            return
        docs = [
            {
                "_id": report["grouping_key"],
                "attempt": attempt["_id"],
                "message_id": report["message_id"],
                "status": report["status"],
                "code": report["code"],
                "message": report.get("message", ""),
                "delivered_at": report["delivered_at"],
                "applied_at": now,
                "inbox": e.inbox_id,
            }
            for e, report, attempt in accepted
        ]
        collided: set[int] = set()
        try:
            await self.store.delivery_reports.insert_many(docs, ordered=False)
        except BulkWriteError as exc:
            collided = set(duplicate_keys.collided(exc))
        # Collisions are reports applied before, unless their own entry put them there
        # on an earlier run that ended before its counts were added.
        ours = await self._inserted_by([docs[i] for i in collided])
        for i, (e, report, attempt) in enumerate(accepted):
            if i not in collided or docs[i]["_id"] in ours:
                e.new.append((report, attempt))
            else:
                e.duplicates += 1

    async def _inserted_by(self, docs: list[dict[str, Any]]) -> set[str]:
        """Of ``docs`` (reports that collided), those already inserted by their own entry."""
        wanted = {d["_id"]: d["inbox"] for d in docs}
        mine: set[str] = set()
        for part in chunks(list(wanted)):
            async for found in self.store.delivery_reports.find(
                {"_id": {"$in": part}}, {"inbox": 1}
            ):
                if found.get("inbox") == wanted[found["_id"]]:
                    mine.add(found["_id"])
        return mine

    def _count(self, e: Entry) -> None:
        for outcome, n in (
            (metrics.ACCEPTED, len(e.new)),
            (metrics.DUPLICATE, e.duplicates + e.found.duplicates),
            (metrics.UNKNOWN, len(e.found.unknown)),
            (metrics.WAITING, len(e.found.waiting)),
            (metrics.EXPIRED, len(e.expired)),
        ):
            if n:
                metrics.REPORTS.labels(e.channel, outcome).inc(n)
        for report, _ in e.new:
            metrics.STATUS_CHANGES.labels(e.channel, report["status"]).inc()
        if e.found.unknown:
            log.warning(
                "delivery reports for no known sent message",
                extra={
                    "channel": e.channel,
                    "inbox_id": e.inbox_id,
                    "unknown": len(e.found.unknown),
                    "examples": [
                        {"receipt_id": r.get("grouping_key"), "message_id": r["message_id"]}
                        for r in e.found.unknown[:LOGGED_UNKNOWN]
                    ],
                },
            )
        if e.expired:
            log.error(
                "delivery reports given up: their receipts never caught up",
                extra={
                    "channel": e.channel,
                    "inbox_id": e.inbox_id,
                    "count": len(e.expired),
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
