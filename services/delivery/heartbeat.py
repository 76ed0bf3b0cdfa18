"""A delivery process's sign of life, so the claims of a dead one are settled in seconds.

Every claim a worker writes names the worker (``worker`` on the receipt, see
:mod:`claims`). The worker beats every ``ALIMI_HEARTBEAT_S``: one upsert of its
document in ``heartbeats``, ``until`` a little more than one provider call
ahead (:func:`ttl_s`). Another worker that finds people claimed by a worker
whose ``until`` is past (or who never beat) knows that worker is gone: it asks
the provider about them at once, instead of waiting out the claim's lease.

That is safe only if a worker that others may think gone calls no provider.
So a worker makes a provider call only while its own last *confirmed* beat
covers the whole call (:meth:`Heartbeat.covers`: the call's timeout and a
margin); a worker cut off from the database stops calling before anyone may
take its people over.

A live worker's attempt can also end without its record (the database failed
mid-way) while the broker hands its batch to another worker. The worker names
such attempts in its next beat (``abandoned``, the latest
:data:`ABANDONED_SHARED`); their claims are settled at once like a gone
worker's. Heartbeat documents are small, one per process run, and go a day
after their last beat (a TTL index).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo.errors import PyMongoError

from alimi import leases
from alimi.store import Store

log = logging.getLogger("alimi.delivery")

# Allowance for clocks that differ between hosts and for the record after a call.
MARGIN_S = 1.0
ABANDONED_SHARED = 200  # attempts a heartbeat names as ended without their record


@dataclass(frozen=True)
class Holders:
    """What the heartbeats of some claims' workers say."""

    gone: set[str] = field(default_factory=set)  # workers whose heartbeat is over
    abandoned: set[str] = field(default_factory=set)  # attempts their live workers gave up


def ttl_s(every_s: float, call_s: float) -> float:
    """How long a beat vouches for its worker: one call and its margin, plus two beats
    (a single late or lost beat does not stop a live worker from calling)."""
    return call_s + MARGIN_S + 2 * every_s


class Heartbeat:
    """This process's heartbeat, written every ``every_s`` by :meth:`run`."""

    def __init__(self, store: Store, role: str, *, every_s: float, call_s: float) -> None:
        self.store = store
        self.role = role
        # Every receipt a worker claims names it: a short random id, not its long name.
        self.owner = secrets.token_hex(6)
        self.name = leases.owner_id(role)  # role@host:pid#random, for people reading
        self.every_s = every_s
        self.call_s = call_s
        self.ttl_s = ttl_s(every_s, call_s)
        self._confirmed_until = 0.0  # monotonic: how long the last written beat vouches
        self._beating: asyncio.Lock | None = None
        self._abandoned: list[str] = []  # to be named by the next beat

    def abandon(self, attempt_id: str) -> None:
        """Name ``attempt_id`` (over, without its record) in the next beat."""
        self._abandoned.append(attempt_id)

    def covers(self, seconds: float) -> bool:
        """Does the last confirmed beat vouch for this worker ``seconds`` from now?"""
        return time.monotonic() + seconds <= self._confirmed_until

    def covers_a_call(self) -> bool:
        return self.covers(self.call_s + MARGIN_S)

    async def beat(self, *, unless_covered: bool = False) -> bool:
        """Write one beat; True once it is confirmed. A failed write is logged, not raised.
        ``unless_covered``: none if a beat written meanwhile covers a call."""
        if self._beating is None:
            self._beating = asyncio.Lock()
        async with self._beating:
            if unless_covered and self.covers_a_call():  # handlers waiting on one beat
                return True
            started = time.monotonic()
            now = datetime.now(UTC)
            named = len(self._abandoned)  # more may come while the beat is written
            abandoned = self._abandoned[-ABANDONED_SHARED:]
            update: dict[str, Any] = {
                "$set": {"until": now + timedelta(seconds=self.ttl_s), "beat_at": now},
                "$setOnInsert": {"role": self.role, "name": self.name, "started_at": now},
            }
            if abandoned:
                update["$push"] = {"abandoned": {"$each": abandoned, "$slice": -ABANDONED_SHARED}}
            try:
                await self.store.heartbeats.update_one({"_id": self.owner}, update, upsert=True)
            except PyMongoError as exc:
                log.warning(
                    "heartbeat not written",
                    extra={"worker": self.name, "error": f"{type(exc).__name__}: {exc}"},
                )
                return False
            del self._abandoned[:named]  # named now (beyond the last 200: dropped)
            self._confirmed_until = max(self._confirmed_until, started + self.ttl_s)
            return True

    async def confirmed(self) -> bool:
        """True if a beat vouches for a whole call from now, beating once more if needed."""
        return self.covers_a_call() or (
            await self.beat(unless_covered=True) and self.covers_a_call()
        )

    async def run(self) -> None:
        """Beat every ``every_s`` for the life of the process."""
        while True:
            await self.beat()
            await asyncio.sleep(self.every_s)

    async def holders(self, workers: Iterable[str]) -> Holders:
        """Of ``workers``, those whose last beat no longer vouches for them (or who never
        beat), and the attempts the others gave up: claims their workers will never
        record."""
        wanted = set(workers)
        if not wanted:
            return Holders()
        now = datetime.now(UTC)
        alive: set[str] = set()
        abandoned: set[str] = set()
        async for doc in self.store.heartbeats.find(
            {"_id": {"$in": sorted(wanted)}, "until": {"$gt": now}}, {"abandoned": 1}
        ):
            alive.add(doc["_id"])
            abandoned.update(doc.get("abandoned") or ())
        return Holders(gone=wanted - alive, abandoned=abandoned)
