"""Gauges of the whole system's state, read from MongoDB and the broker.

* ``alimi_notices{state}``: notices per state.
* Per active incident (its first notice segmenting or sending): seconds left
  to its legal deadline, its people, its expected receipts (one per recipient
  and per skipped person, summed over its partitions) and how many are final
  (the notice's counters, :mod:`alimi.counters`), and the share. These are the
  one place a label carries an id: the series exist only while an incident
  is being notified and are removed after, so their number is bounded by the
  incidents in progress (a handful), not by history.
* ``alimi_queue_messages_ready{queue}`` and ``alimi_queue_consumers{queue}``
  for every work queue, from passive declarations: backlog and "no consumer"
  alerts need no broker plugin.

Every segmenter replica exports the same numbers; aggregate with ``max``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from prometheus_client import Gauge

from alimi import compliance, counters, partitions, states, topology
from alimi.bus import Bus
from alimi.store import Store

log = logging.getLogger("alimi.segmenter.monitor")

ACTIVE = (states.NOTICE_SEGMENTING, states.NOTICE_SENDING)

NOTICES = Gauge("alimi_notices", "Notices by state", ["state"])
DEADLINE_LEFT = Gauge(
    "alimi_incident_deadline_seconds_left",
    "Seconds until the incident's legal notification deadline (negative: past it)",
    ["incident"],
)
PEOPLE = Gauge(
    "alimi_incident_people",
    "People in the audience of the incident's first notice (recipients + merged + skipped)",
    ["incident"],
)
RECEIPTS = Gauge(
    "alimi_incident_receipts",
    "Receipts the incident's first notice will have: one per recipient and per skipped person",
    ["incident"],
)
FINAL_RECEIPTS = Gauge(
    "alimi_incident_receipts_final",
    "Of those, the receipts that are final (reached, or given up on)",
    ["incident"],
)
FINAL_RATIO = Gauge(
    "alimi_incident_final_ratio",
    "Share of the incident's first notice's receipts that are final",
    ["incident"],
)
QUEUE_READY = Gauge("alimi_queue_messages_ready", "Messages waiting in a queue", ["queue"])
QUEUE_CONSUMERS = Gauge("alimi_queue_consumers", "Consumers of a queue", ["queue"])

FINAL = sorted(states.FINAL_RECEIPT_STATES)
INCIDENT_GAUGES = (DEADLINE_LEFT, PEOPLE, RECEIPTS, FINAL_RECEIPTS, FINAL_RATIO)
WATCHED_QUEUES = tuple(q.name for q in (*topology.WORK_QUEUES, *topology.DEAD_QUEUES))


def deadline(incident: dict[str, Any]) -> datetime:
    """The incident's legal deadline: its own, or 72 hours after discovery."""
    explicit = incident.get("deadline")
    if isinstance(explicit, datetime):
        return explicit
    return compliance.deadline(incident["discovered_at"])


class Monitor:
    def __init__(self, store: Store, bus: Bus) -> None:
        self.store = store
        self.bus = bus
        self._incidents: set[str] = set()

    async def check(self, now: datetime | None = None) -> None:
        now = now or datetime.now(UTC)
        await self._notices()
        await self._incidents_in_progress(now)
        await self._queues()

    async def _notices(self) -> None:
        counts = dict.fromkeys(states.NOTICE_STATES, 0)
        pipeline: list[dict[str, Any]] = [{"$group": {"_id": "$state", "n": {"$sum": 1}}}]
        async for row in await self.store.notices.aggregate(pipeline):
            if row["_id"] in counts:
                counts[row["_id"]] = row["n"]
        for state, n in counts.items():
            NOTICES.labels(state).set(n)

    async def _incidents_in_progress(self, now: datetime) -> None:
        # The legal deadline is for the first notice; later updates have none.
        active = await self.store.notices.find(
            {"state": {"$in": list(ACTIVE)}, "seq": 1},
            {"incident_id": 1, "progress": 1, "run": 1},
        ).to_list()
        totals = await counters.totals(self.store, [n["_id"] for n in active])
        resolved = await partitions.progress_of(self.store, active)
        shown: set[str] = set()
        for notice in active:
            incident_id = notice["incident_id"]
            incident = await self.store.incidents.find_one(
                {"_id": incident_id}, {"discovered_at": 1, "deadline": 1}
            )
            if incident is None:
                continue
            progress = resolved[notice["_id"]]
            final = totals.get(notice["_id"], counters.NoticeCounts()).final()
            expected = progress.expected_receipts
            DEADLINE_LEFT.labels(incident_id).set((deadline(incident) - now).total_seconds())
            PEOPLE.labels(incident_id).set(progress.people)
            RECEIPTS.labels(incident_id).set(expected)
            FINAL_RECEIPTS.labels(incident_id).set(final)
            FINAL_RATIO.labels(incident_id).set(final / expected if expected else 0.0)
            shown.add(incident_id)
        self._forget(self._incidents - shown)
        self._incidents = shown

    def _forget(self, incidents: Iterable[str]) -> None:
        for incident_id in incidents:
            for gauge in INCIDENT_GAUGES:
                try:
                    gauge.remove(incident_id)
                except KeyError:
                    pass

    async def _queues(self) -> None:
        channel = await self.bus.channel(prefetch=1)
        try:
            for name in WATCHED_QUEUES:
                declared = await channel.declare_queue(self.bus.names(name), passive=True)
                result = declared.declaration_result
                QUEUE_READY.labels(name).set(result.message_count or 0)
                QUEUE_CONSUMERS.labels(name).set(result.consumer_count or 0)
        finally:
            await channel.close()


async def run(monitor: Monitor, interval_s: float) -> None:
    while True:
        began = time.monotonic()
        try:
            await monitor.check()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("monitor check failed; will retry")
        # Never more than a fifth of the time on these reads, however slow the store.
        await asyncio.sleep(max(interval_s, 4 * (time.monotonic() - began)))
