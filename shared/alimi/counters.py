"""A notice's counts of people by channel and status, kept as the work is written.

Nothing counts receipts to know how far a notice is: every write that changes
people's statuses adds its own numbers (:class:`Delta`) to a counter document
in the same transaction — an attempt and its outcomes, a claim taking people
over from an earlier attempt, delivery reports applied, the segmenter's
skipped people. A write that happens once adds once; a batch handled twice
finds its people already claimed and adds nothing. The notice's counts are the
sum of its counter documents (:func:`totals`), a handful whatever the
notice's size, so a progress check or the incident read-back costs the same
at a thousand people as at ten million.

Counter documents are *shards*: each writer adds to its own
(``{notice}/{writer}/{slot}``), and a process never has two transactions on
one shard at once (:class:`Shards`), so concurrent writers never conflict on a
shared document. :mod:`alimi.recount` repairs the counts from the documents
themselves, rarely and off the hot path.

``by_channel[channel][status]`` counts people whose status is ``status``,
last handled on ``channel`` (``none``: decided before a channel was chosen,
such as people with no phone); ``claimed`` is not counted (in flight).
``fell_back[channel]`` counts people handed from ``channel`` to the next one.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pymongo.asynchronous.client_session import AsyncClientSession

from alimi import states
from alimi.store import Store

NO_CHANNEL = "none"
REACHED = (states.SENT, states.DELIVERED, states.UNDELIVERED)


@dataclass
class NoticeCounts:
    by_channel: dict[str, dict[str, int]] = field(default_factory=dict)
    fell_back: dict[str, int] = field(default_factory=dict)  # from channel -> people

    def totals(self) -> dict[str, int]:
        totals: dict[str, int] = {}
        for per_status in self.by_channel.values():
            for status, n in per_status.items():
                totals[status] = totals.get(status, 0) + n
        return totals

    def count(self, status: str, channel: str | None = None) -> int:
        if channel is None:
            return self.totals().get(status, 0)
        return self.by_channel.get(channel, {}).get(status, 0)

    def reached(self, channel: str | None = None) -> int:
        """People a provider accepted a message for (sent, then delivered or not)."""
        return sum(self.count(s, channel) for s in REACHED)

    def final(self) -> int:
        """People who need no more work: see :data:`alimi.states.FINAL_RECEIPT_STATES`."""
        return sum(n for s, n in self.totals().items() if s in states.FINAL_RECEIPT_STATES)

    def total(self) -> int:
        return sum(self.totals().values())

    def add(self, other: NoticeCounts) -> None:
        for channel, per_status in other.by_channel.items():
            mine = self.by_channel.setdefault(channel, {})
            for status, n in per_status.items():
                mine[status] = mine.get(status, 0) + n
        for channel, n in other.fell_back.items():
            self.fell_back[channel] = self.fell_back.get(channel, 0) + n

    def pruned(self) -> NoticeCounts:
        """Without the zeros a transition leaves behind (``sent: 0`` once all are delivered)."""
        by_channel = {
            ch: {s: n for s, n in per.items() if n}
            for ch, per in self.by_channel.items()
            if any(per.values())
        }
        return NoticeCounts(by_channel, {ch: n for ch, n in self.fell_back.items() if n})

    def as_dict(self) -> dict[str, Any]:
        return {"by_channel": self.by_channel, "fell_back": self.fell_back}


@dataclass
class Delta:
    """Changes to a notice's counts made by one write."""

    changes: dict[tuple[str, str], int] = field(default_factory=dict)  # (channel, status) -> n
    fell_back: dict[str, int] = field(default_factory=dict)

    def add(self, channel: str | None, status: str, n: int = 1) -> Delta:
        if n and status != states.CLAIMED:
            key = (channel or NO_CHANNEL, status)
            self.changes[key] = self.changes.get(key, 0) + n
        return self

    def move(self, channel: str | None, old: str, new_channel: str | None, new: str) -> Delta:
        """One person from ``old`` on ``channel`` to ``new`` on ``new_channel``."""
        return self.add(channel, old, -1).add(new_channel, new, 1)

    def handed_over(self, from_channel: str, n: int = 1) -> Delta:
        self.fell_back[from_channel] = self.fell_back.get(from_channel, 0) + n
        return self

    def __bool__(self) -> bool:
        return any(self.changes.values()) or any(self.fell_back.values())

    def increments(self) -> dict[str, int]:
        inc = {f"by_channel.{ch}.{st}": n for (ch, st), n in self.changes.items() if n}
        inc.update({f"fell_back.{ch}": n for ch, n in self.fell_back.items() if n})
        return inc


def shard_id(notice_id: str, shard: str) -> str:
    return f"{notice_id}/{shard}"


async def add(
    store: Store,
    notice_id: str,
    delta: Delta,
    *,
    shard: str,
    session: AsyncClientSession | None = None,
) -> None:
    """Add ``delta`` to the notice's counts, in ``session``'s transaction if given."""
    if not delta:
        return
    await store.notice_counts.update_one(
        {"_id": shard_id(notice_id, shard)},
        {
            "$inc": delta.increments(),
            "$set": {"updated_at": datetime.now(UTC)},
            "$setOnInsert": {"notice_id": notice_id, "shard": shard},
        },
        upsert=True,
        session=session,
    )


def from_documents(docs: Iterable[Mapping[str, Any]]) -> NoticeCounts:
    counts = NoticeCounts()
    for doc in docs:
        counts.add(
            NoticeCounts(
                {ch: dict(per) for ch, per in (doc.get("by_channel") or {}).items()},
                dict(doc.get("fell_back") or {}),
            )
        )
    return counts


async def totals(store: Store, notice_ids: Iterable[str]) -> dict[str, NoticeCounts]:
    """notice id -> its counts (zeros pruned); a notice nothing was counted for is absent."""
    wanted = list(notice_ids)
    if not wanted:
        return {}
    docs: dict[str, list[dict[str, Any]]] = {}
    async for doc in store.notice_counts.find(
        {"notice_id": {"$in": wanted}}, {"notice_id": 1, "by_channel": 1, "fell_back": 1}
    ):
        docs.setdefault(doc["notice_id"], []).append(doc)
    return {nid: from_documents(found).pruned() for nid, found in docs.items()}


async def of_notice(store: Store, notice_id: str) -> NoticeCounts:
    return (await totals(store, [notice_id])).get(notice_id, NoticeCounts())


class Shards:
    """This process's counter shards: a transaction takes one no other holds.

    ``writer`` names the process (service, host, pid); ``slots`` bounds how many
    transactions of this process add to one notice's counts at once.
    """

    def __init__(self, writer: str, slots: int) -> None:
        self.writer = writer
        self._free: asyncio.Queue[int] = asyncio.Queue()
        for slot in range(max(1, slots)):
            self._free.put_nowait(slot)

    @classmethod
    def for_process(cls, service: str, slots: int) -> Shards:
        return cls(f"{service}@{socket.gethostname()}:{os.getpid()}", slots)

    @asynccontextmanager
    async def take(self) -> AsyncIterator[str]:
        slot = await self._free.get()
        try:
            yield f"{self.writer}#{slot}"
        finally:
            self._free.put_nowait(slot)
