"""Marks notices ``completed`` once every recipient's receipt is final.

The truth is in the receipts, not in counters that a crash could skew: for
each notice in ``sending`` the tracker counts final receipts and compares
them with what the segmenter resolved.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from prometheus_client import Counter

from alimi import states
from alimi.store import Store

log = logging.getLogger("alimi.segmenter.progress")

COMPLETED = Counter("alimi_notices_completed_total", "Notices whose every receipt is final")


async def check_completion(store: Store) -> int:
    completed = 0
    async for notice in store.notices.find({"state": states.NOTICE_SENDING}):
        progress = notice.get("progress", {})
        expected = progress.get("recipients_published", 0) + progress.get("skipped_no_phone", 0)
        final = await store.receipts.count_documents(
            {"notice_id": notice["_id"], "status": {"$in": sorted(states.FINAL_RECEIPT_STATES)}}
        )
        if final < expected:
            continue
        result = await store.notices.update_one(
            {"_id": notice["_id"], "state": states.NOTICE_SENDING},
            {"$set": {"state": states.NOTICE_COMPLETED, "completed_at": datetime.now(UTC)}},
        )
        if result.modified_count:
            completed += 1
            COMPLETED.inc()
            log.info("notice completed", extra={"notice_id": notice["_id"], "receipts": final})
    return completed


async def run(store: Store, interval_s: float) -> None:
    while True:
        try:
            await check_completion(store)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("completion check failed; will retry")
        await asyncio.sleep(interval_s)
