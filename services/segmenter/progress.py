"""Tracks each sending notice: milestones for staff, and ``completed`` at the end.

The truth is in the receipts, not in counters that a crash could skew: for
each notice in ``sending`` the tracker counts final receipts and compares
them with what the segmenter resolved. Crossing 25, 50 or 75 percent is
announced to staff once; so is completion, after which the notice is marked
``completed``. The count is kept on the notice (``progress.final_receipts``)
for the system gauges (``monitor.py``), so receipts are counted once per
check, not once per reader.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime
from typing import Any

from prometheus_client import Counter

from alimi import states
from alimi.bus import Bus
from alimi.store import Store
from alimi_segmenter import staff

log = logging.getLogger("alimi.segmenter.progress")

COMPLETED = Counter("alimi_notices_completed_total", "Notices whose every receipt is final")
MILESTONES = (25, 50, 75)
# A check counts a notice's receipts, which costs the database time in proportion to
# the audience. Waiting this many times as long as the last check took keeps the
# checks to at most 1 / (1 + BACKOFF) of the database's time, however large the
# notice: a million-person notice is checked less often than every interval.
BACKOFF = 4.0


def pause(interval_s: float, took_s: float) -> float:
    """How long to wait after a check that took ``took_s``: the interval, or more."""
    return max(interval_s, BACKOFF * took_s)


def expected_receipts(notice: dict[str, Any]) -> int:
    progress = notice.get("progress", {})
    return (
        progress.get("recipients_published", 0)
        + progress.get("skipped_no_phone", 0)
        + progress.get("skipped_unreachable", 0)
    )


def crossed(final: int, expected: int, announced: list[int]) -> int | None:
    """The highest milestone reached and not yet announced (lower ones are implied)."""
    if expected <= 0:
        return None
    percent = final * 100 // expected
    reached = [m for m in MILESTONES if m <= percent and m not in announced]
    return max(reached) if reached else None


async def check_progress(store: Store, bus: Bus) -> int:
    """One pass over the sending notices; returns how many completed."""
    completed = 0
    async for notice in store.notices.find({"state": states.NOTICE_SENDING}):
        expected = expected_receipts(notice)
        final = await store.receipts.count_documents(
            {"notice_id": notice["_id"], "status": {"$in": sorted(states.FINAL_RECEIPT_STATES)}}
        )
        ids = {"notice_id": notice["_id"], "incident_id": notice["incident_id"]}
        if final != notice.get("progress", {}).get("final_receipts"):
            await store.notices.update_one(
                {"_id": notice["_id"]}, {"$set": {"progress.final_receipts": final}}
            )
        if final < expected:
            announced = notice.get("progress", {}).get("milestones", [])
            milestone = crossed(final, expected, announced)
            if milestone is not None:
                await staff.announce(bus, **ids, stage="milestone", percent=milestone)
                lower = [m for m in MILESTONES if m <= milestone]
                await store.notices.update_one(
                    {"_id": notice["_id"]},
                    {"$addToSet": {"progress.milestones": {"$each": lower}}},
                )
            continue
        await staff.announce(bus, **ids, stage="completed", percent=100)
        result = await store.notices.update_one(
            {"_id": notice["_id"], "state": states.NOTICE_SENDING},
            {"$set": {"state": states.NOTICE_COMPLETED, "completed_at": datetime.now(UTC)}},
        )
        if result.modified_count:
            completed += 1
            COMPLETED.inc()
            log.info("notice completed", extra={"notice_id": notice["_id"], "receipts": final})
    return completed


async def run(store: Store, bus: Bus, interval_s: float) -> None:
    while True:
        began = time.monotonic()
        try:
            await check_progress(store, bus)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("progress check failed; will retry")
        await asyncio.sleep(pause(interval_s, time.monotonic() - began))
