"""The outbox relay: publishes events that were stored with the state change.

An event is written to ``outbox`` in the same transaction as the change it
announces; the relay publishes it with a publisher confirm and only then marks
it published. A crash in between publishes it again on restart (consumers are
idempotent), so nothing is lost. A lease keeps two replicas from publishing
the same record at the same moment.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

from prometheus_client import Counter, Gauge

from alimi.bus import Bus
from alimi.store import Store

log = logging.getLogger("alimi.intake.outbox")

RELAYED = Counter("alimi_outbox_relayed_total", "Outbox events published")
PENDING = Gauge("alimi_outbox_pending", "Outbox events not yet published (last poll)")
LEASE = timedelta(seconds=30)


class OutboxRelay:
    def __init__(self, store: Store, bus: Bus, *, poll_s: float) -> None:
        self.store = store
        self.bus = bus
        self.poll_s = poll_s
        self._wake = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        while True:
            try:
                await self.drain()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("outbox relay pass failed; will retry")
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=self.poll_s)
            except TimeoutError:
                pass
            self._wake.clear()

    async def drain(self) -> int:
        """Publish every unpublished event; return how many were published."""
        published = 0
        while True:
            now = datetime.now(UTC)
            record = await self.store.outbox.find_one_and_update(
                {"published": False, "$or": [{"lease_until": None}, {"lease_until": {"$lt": now}}]},
                {"$set": {"lease_until": now + LEASE}},
                sort=[("created_at", 1)],
            )
            if record is None:
                PENDING.set(await self.store.outbox.count_documents({"published": False}))
                return published
            await self.bus.publish(
                record["exchange"],
                record["routing_key"],
                record["body"].encode(),
                message_id=record["_id"],
            )
            await self.store.outbox.update_one(
                {"_id": record["_id"]},
                {"$set": {"published": True, "published_at": datetime.now(UTC)}},
            )
            RELAYED.inc()
            published += 1
