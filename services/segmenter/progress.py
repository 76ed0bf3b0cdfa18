"""Tracks each sending notice: milestones for staff, and ``completed`` at the end.

One segmenter replica at a time runs it: the one holding the named lease
``segmenter.tracker`` (:mod:`alimi.leases`), renewed at every pass; another
takes over once a dead holder's lease is over.

For each notice in ``sending`` the tracker compares the people whose receipt
is final — from the notice's counters (:mod:`alimi.counters`), a handful of
documents whatever the notice's size — with what the segmenter resolved (the
sum over the notice's partitions, :mod:`alimi.partitions`).
Crossing 25, 50 or 75 percent is announced to staff once; so is completion,
after which the notice is marked ``completed``.

After completion the providers' delivery reports still come in. For a
completed notice whose staff summary is not final yet, the tracker announces
``reports`` when the delivered/undelivered counts moved (at most every
``reports_every_s``), and ``final`` once no report is awaited, or once
``reports_cutoff_s`` have passed since completion (a provider that never
reports some messages must not keep the summary open for ever).

It also watches the partitions of segmenting notices: one not done whose
owner's lease is over (the replica died mid-partition) has its message
published again, so another replica takes it over from its checkpoint.

The counters are written with the work they count, so they need no checking.
Still, if a notice stops moving (no change for ``STALL_S``) before it is
complete, the tracker recounts it from its documents (:func:`alimi.recount.repair`)
— at most once every ``RECOUNT_EVERY_S`` per notice, because a recount reads
every receipt — so that a counter that went wrong cannot leave a notice
``sending`` for good.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from prometheus_client import Counter

from alimi import counters, leases, notice_states, partitions, recount, states, topology
from alimi.bus import Bus
from alimi.store import Store
from alimi_segmenter import planner, staff

log = logging.getLogger("alimi.segmenter.progress")

COMPLETED = Counter("alimi_notices_completed_total", "Notices whose every receipt is final")
MILESTONES = (25, 50, 75)
STALL_S = 60.0  # no change this long before completion: recount the notice
RECOUNT_EVERY_S = 600.0
REPORTS_EVERY_S = 10.0  # the summary follows the delivery reports at most this often
REPORTS_CUTOFF_S = 3600.0  # after this long since completion the summary is final


TRACKER_LEASE = "segmenter.tracker"
REPUBLISH_EVERY_S = 30.0  # a partition nobody owns is published again at most this often


def crossed(final: int, expected: int, announced: list[int]) -> int | None:
    """The highest milestone reached and not yet announced (lower ones are implied)."""
    if expected <= 0:
        return None
    percent = final * 100 // expected
    reached = [m for m in MILESTONES if m <= percent and m not in announced]
    return max(reached) if reached else None


@dataclass
class _Seen:
    final: int
    since: float  # when ``final`` was first seen (monotonic)
    recounted: float = float("-inf")


class Tracker:
    def __init__(
        self,
        store: Store,
        bus: Bus,
        *,
        stall_s: float = STALL_S,
        recount_every_s: float = RECOUNT_EVERY_S,
        reports_every_s: float = REPORTS_EVERY_S,
        reports_cutoff_s: float = REPORTS_CUTOFF_S,
        clock: Any = time.monotonic,
    ) -> None:
        self.store = store
        self.bus = bus
        self.stall_s = stall_s
        self.recount_every_s = recount_every_s
        self.reports_every_s = reports_every_s
        self.reports_cutoff_s = reports_cutoff_s
        self.clock = clock
        self._seen: dict[str, _Seen] = {}

    async def check(self) -> int:
        """One pass over the sending notices; returns how many completed."""
        sending = await self.store.notices.find({"state": states.NOTICE_SENDING}).to_list()
        totals = await counters.totals(self.store, [n["_id"] for n in sending])
        resolved = await partitions.progress_of(self.store, sending)
        completed = 0
        for notice in sending:
            counts = totals.get(notice["_id"], counters.NoticeCounts())
            if await self._check(notice, counts, resolved[notice["_id"]].expected_receipts):
                completed += 1
        self._seen = {n["_id"]: self._seen[n["_id"]] for n in sending if n["_id"] in self._seen}
        await self._follow_reports()
        return completed

    async def _follow_reports(self) -> None:
        """Completed notices whose summary still awaits delivery reports."""
        waiting = await self.store.notices.find(
            {"state": states.NOTICE_COMPLETED, "reports_final_at": {"$exists": False}},
            {"incident_id": 1, "completed_at": 1, "reports_shown": 1},
        ).to_list()
        if not waiting:
            return
        totals = await counters.totals(self.store, [n["_id"] for n in waiting])
        now = datetime.now(UTC)
        for notice in waiting:
            counts = totals.get(notice["_id"], counters.NoticeCounts())
            reported = counts.count(states.DELIVERED) + counts.count(states.UNDELIVERED)
            ids = {"notice_id": notice["_id"], "incident_id": notice["incident_id"]}
            completed_at = notice.get("completed_at") or now
            waited = (now - _utc(completed_at)).total_seconds()
            if not counts.count(states.SENT) or waited >= self.reports_cutoff_s:
                await staff.announce(self.bus, **ids, stage="final", percent=100)
                await self.store.notices.update_one(
                    {"_id": notice["_id"]},
                    {
                        "$set": {
                            "reports_final_at": now,
                            "reports_shown": {"n": reported, "at": now},
                        }
                    },
                )
                continue
            shown = notice.get("reports_shown") or {}
            if reported == shown.get("n", -1):
                continue
            last = shown.get("at")
            if isinstance(last, datetime) and (now - _utc(last)).total_seconds() < (
                self.reports_every_s
            ):
                continue
            await staff.announce(self.bus, **ids, stage="reports", percent=100)
            await self.store.notices.update_one(
                {"_id": notice["_id"]}, {"$set": {"reports_shown": {"n": reported, "at": now}}}
            )

    async def _check(
        self, notice: dict[str, Any], counts: counters.NoticeCounts, expected: int
    ) -> bool:
        final = counts.final()
        ids = {"notice_id": notice["_id"], "incident_id": notice["incident_id"]}
        if final < expected:
            announced = notice.get("progress", {}).get("milestones", [])
            milestone = crossed(final, expected, announced)
            if milestone is not None:
                await staff.announce(self.bus, **ids, stage="milestone", percent=milestone)
                lower = [m for m in MILESTONES if m <= milestone]
                await self.store.notices.update_one(
                    {"_id": notice["_id"]},
                    {"$addToSet": {"progress.milestones": {"$each": lower}}},
                )
            await self._watch_for_stall(notice["_id"], final)
            return False
        await staff.announce(self.bus, **ids, stage="completed", percent=100)
        now = datetime.now(UTC)
        reported = counts.count(states.DELIVERED) + counts.count(states.UNDELIVERED)
        done = await notice_states.move(
            self.store,
            notice["_id"],
            "complete",
            changes={
                "completed_at": now,
                # what the summary shows; it follows the reports from here
                "reports_shown": {"n": reported, "at": now},
            },
        )
        if done is None:
            return False
        COMPLETED.inc()
        log.info("notice completed", extra={"notice_id": notice["_id"], "receipts": final})
        return True

    async def _watch_for_stall(self, notice_id: str, final: int) -> None:
        now = self.clock()
        seen = self._seen.get(notice_id)
        if seen is None or seen.final != final:
            self._seen[notice_id] = _Seen(final, now, seen.recounted if seen else float("-inf"))
            return
        if now - seen.since < self.stall_s or now - seen.recounted < self.recount_every_s:
            return
        seen.recounted = now
        found = await recount.repair(self.store, notice_id)
        log.info(
            "stalled notice recounted",
            extra={"notice_id": notice_id, "result": found.result, "drift": found.drift},
        )

    async def sweep_partitions(self) -> int:
        """Publish again the message of each unfinished partition nobody owns any more
        (its owner died mid-partition, or its message was lost); how many.

        A partition nobody has taken yet is most likely still queued behind others
        (a notice of hundreds of partitions, a few segmenters): while the partitions
        queue holds messages ready, it is left alone; once the queue is empty and it
        is still untaken, its message was lost."""
        now = datetime.now(UTC)
        republished = 0
        queued: int | None = None  # the partitions queue's ready messages, read once
        async for part in self.store.partitions.find(
            {
                "state": {"$in": [partitions.PENDING, partitions.RUNNING]},
                "lease.until": {"$lt": now},
            }
        ):
            if part["state"] == partitions.PENDING and _age_s(part.get("created_at"), now) < (
                REPUBLISH_EVERY_S
            ):
                continue  # just planned: its message is on its way
            if _age_s(part.get("republished_at"), now) < REPUBLISH_EVERY_S:
                continue
            if not (part.get("lease") or {}).get("owner"):  # never taken
                if queued is None:
                    queued = await _ready(self.bus, topology.PARTITIONS_QUEUE)
                if queued:
                    continue  # waiting its turn
            notice = await self.store.notices.find_one({"_id": part["notice_id"]})
            if notice is None or notice.get("run") != part["run"]:
                continue
            await planner.publish(self.bus, notice, part)
            await self.store.partitions.update_one(
                {"_id": part["_id"]}, {"$set": {"republished_at": now}}
            )
            republished += 1
            log.warning(
                "partition without a live owner published again",
                extra={"partition_id": part["_id"], "state": part["state"]},
            )
        return republished


async def _ready(bus: Bus, queue: str) -> int:
    """How many messages ``queue`` (a logical name) holds ready now: a passive
    declaration, on a channel of its own."""
    channel = await bus.channel(prefetch=1)
    try:
        declared = await channel.declare_queue(bus.names(queue), passive=True)
        return declared.declaration_result.message_count or 0
    finally:
        await channel.close()


def _age_s(at: Any, now: datetime) -> float:
    return (now - _utc(at)).total_seconds() if isinstance(at, datetime) else float("inf")


def _utc(at: datetime) -> datetime:
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at


async def run(tracker: Tracker, interval_s: float, *, lease: leases.Named) -> None:
    """Run the tracker's passes for the life of the process, while this replica holds
    ``lease`` (one replica at a time)."""
    leading = False
    while True:
        try:
            held = await lease.acquire()
            if held != leading:
                leading = held
                log.info(
                    "progress tracker " + ("taken over" if held else "left to another replica"),
                    extra={"owner": lease.owner},
                )
            if held:
                await tracker.check()
                await tracker.sweep_partitions()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("progress check failed; will retry")
        await asyncio.sleep(interval_s)
