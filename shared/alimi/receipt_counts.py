"""Counts of a notice's receipts, read from the receipts themselves.

The intake read-back and the staff (Slack) posts show the same numbers, and
both come from here: per channel and status, and how many people fell back
from one channel to another. Receipts with no channel (skipped before any
channel was chosen) are counted under ``"none"``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

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

    def total(self) -> int:
        return sum(self.totals().values())


async def receipt_counts(store: Store, notice_ids: list[str]) -> dict[str, NoticeCounts]:
    """notice id -> its counts; a notice with no receipts yet is absent."""
    pipeline: list[dict[str, Any]] = [
        {"$match": {"notice_id": {"$in": notice_ids}}},
        {
            "$group": {
                "_id": {
                    "n": "$notice_id",
                    "c": "$channel",
                    "s": "$status",
                    "f": "$fallback_from",
                },
                "count": {"$sum": 1},
            }
        },
    ]
    counts: dict[str, NoticeCounts] = {}
    async for row in await store.receipts.aggregate(pipeline):
        key = row["_id"]
        notice = counts.setdefault(key["n"], NoticeCounts())
        channel = key.get("c") or NO_CHANNEL
        per_status = notice.by_channel.setdefault(channel, {})
        per_status[key["s"]] = per_status.get(key["s"], 0) + row["count"]
        if key.get("f"):
            notice.fell_back[key["f"]] = notice.fell_back.get(key["f"], 0) + row["count"]
    return counts
