"""Repairing a notice's counters from the documents themselves: rare, off the hot path.

The counters (:mod:`alimi.counters`) are added to in the same transaction as
the writes they count, so they do not drift on their own. A recount is the
safety net for what no transaction covers (a document changed by hand, a bug):
it reads every receipt of the notice with its attempt and report
(:func:`alimi.receipt_view.of_notice`: one pass, a chunk at a time) and, if
the counters disagree, writes the difference into a ``recount`` shard so that
the sum is right again.

It only repairs a notice that is *quiet*: if any counter changed while the
documents were read, what was read may already be out of date, and the
repair is skipped (the caller tries again later). Its cost grows with the
notice, which is why it runs only when a notice looks stuck.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from prometheus_client import Counter

from alimi import counters, receipt_view, states
from alimi.counters import NoticeCounts
from alimi.store import Store

log = logging.getLogger("alimi.recount")

RECOUNT_SHARD = "recount"

RECOUNTS = Counter(
    "alimi_notice_recounts_total",
    "Recounts of a notice's counters from its documents, by result",
    ["result"],  # agreed, repaired, busy (counters moved meanwhile)
)


@dataclass(frozen=True)
class Recount:
    truth: NoticeCounts
    counted: NoticeCounts  # what the counters said
    result: str  # agreed, repaired or busy

    @property
    def drift(self) -> dict[str, dict[str, int]]:
        return difference(self.truth, self.counted).by_channel


async def from_documents(store: Store, notice_id: str) -> NoticeCounts:
    """The notice's counts, read from its receipts, attempts and reports."""
    counts = NoticeCounts()
    async for view in receipt_view.of_notice(store, notice_id):
        if view.status == states.CLAIMED:
            continue  # in flight: never counted
        per = counts.by_channel.setdefault(view.channel, {})
        per[view.status] = per.get(view.status, 0) + 1
        came_from = _fell_back_from(view)
        if came_from is not None:
            counts.fell_back[came_from] = counts.fell_back.get(came_from, 0) + 1
    return counts.pruned()


def _fell_back_from(view: receipt_view.ReceiptView) -> str | None:
    if view.status == states.FELL_BACK:
        return view.channel
    return view.fallback_from


def difference(a: NoticeCounts, b: NoticeCounts) -> NoticeCounts:
    """``a - b``, zeros left out."""
    out = NoticeCounts()
    for channel in set(a.by_channel) | set(b.by_channel):
        for status in set(a.by_channel.get(channel, {})) | set(b.by_channel.get(channel, {})):
            n = a.count(status, channel) - b.count(status, channel)
            if n:
                out.by_channel.setdefault(channel, {})[status] = n
    for channel in set(a.fell_back) | set(b.fell_back):
        n = a.fell_back.get(channel, 0) - b.fell_back.get(channel, 0)
        if n:
            out.fell_back[channel] = n
    return out


async def _shards(store: Store, notice_id: str) -> list[dict[str, Any]]:
    return await store.notice_counts.find({"notice_id": notice_id}).to_list()


async def repair(store: Store, notice_id: str) -> Recount:
    """Recount the notice; if it was quiet and the counters were wrong, correct them."""
    before = await _shards(store, notice_id)
    truth = await from_documents(store, notice_id)
    after = await _shards(store, notice_id)
    counted = counters.from_documents(after).pruned()
    if _state(before) != _state(after):
        RECOUNTS.labels("busy").inc()
        return Recount(truth, counted, "busy")
    drift = difference(truth, counted)
    if not drift.by_channel and not drift.fell_back:
        RECOUNTS.labels("agreed").inc()
        return Recount(truth, counted, "agreed")
    others = counters.from_documents(d for d in after if d.get("shard") != RECOUNT_SHARD)
    correction = difference(truth, others)
    await store.notice_counts.replace_one(
        {"_id": counters.shard_id(notice_id, RECOUNT_SHARD)},
        {
            "notice_id": notice_id,
            "shard": RECOUNT_SHARD,
            "by_channel": correction.by_channel,
            "fell_back": correction.fell_back,
            "updated_at": datetime.now(UTC),
        },
        upsert=True,
    )
    RECOUNTS.labels("repaired").inc()
    log.warning(
        "notice counters repaired from the documents",
        extra={"notice_id": notice_id, "drift": drift.by_channel, "fell_back": drift.fell_back},
    )
    return Recount(truth, counted, "repaired")


def _state(shards: list[dict[str, Any]]) -> list[tuple[str, Any, Any]]:
    return sorted((d["_id"], d.get("by_channel"), d.get("fell_back")) for d in shards)
