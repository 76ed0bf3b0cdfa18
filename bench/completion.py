"""When the pipeline benchmark's notice is done: every person handled and every report
applied, then the notice marked completed; progress printed every 5 s meanwhile."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import sampling

from alimi import partitions, states
from alimi.store import Store

# Once every receipt is in: how long the notice gets to be marked completed.
COMPLETION_GRACE_S = 120.0


async def wait(
    store: Store, watcher: sampling.Watcher, notice_id: str, timeout_s: float
) -> tuple[dict[str, Any], bool]:
    """Until every person is handled and every report applied, then (a little longer) until
    the notice is ``completed``; the notice's last state, and whether all that happened
    within ``timeout_s`` (if not, what was done by then is measured and reported)."""
    started = time.monotonic()
    last_print = 0.0
    all_in: float | None = None
    while True:
        notice = await store.notices.find_one(
            {"_id": notice_id},
            {"state": 1, "run": 1, "approved_at": 1, "segmented_at": 1, "completed_at": 1},
        )
        assert notice is not None
        resolved = (await partitions.progress_of(store, [notice]))[notice_id]
        notice["progress"] = resolved.as_dict() | {
            "recipients_published": resolved.recipients_published,
            "deduplicated": resolved.deduplicated,
            "skipped_no_phone": resolved.skipped_no_phone,
            "skipped_unreachable": resolved.skipped_unreachable,
        }
        counters = watcher.latest()
        sent = sum(
            v for k, v in counters.items() if k.startswith("delivery.") and k.endswith(".sent")
        )
        failed = sum(
            v for k, v in counters.items() if k.startswith("delivery.") and k.endswith(".failed")
        )
        applied = counters.get("receipts.applied", 0)
        published = (notice.get("progress") or {}).get("recipients_published", 0)
        elapsed = time.monotonic() - started
        state = notice["state"]
        if state in (states.NOTICE_HALTED, states.NOTICE_FAILED):
            raise RuntimeError(f"notice {notice_id} ended {state}")
        segmented = state in (states.NOTICE_SENDING, states.NOTICE_COMPLETED)
        # Every report handed over by the sandbox, and applied (or given up) by receipts.
        reports_over = (
            counters.get("sandbox.reports.pending", 1) == 0
            and counters.get("sandbox.reports.in_flight_batches", 1) == 0
            and counters.get("receipts.inbox", -1) == 0
        )
        if (
            all_in is None
            and segmented
            and sent + failed >= published
            and (applied >= sent or reports_over)
        ):
            all_in = elapsed
        if all_in is not None and (
            state == states.NOTICE_COMPLETED or elapsed - all_in > COMPLETION_GRACE_S
        ):
            return notice, True
        if elapsed > timeout_s:
            if all_in is not None:  # everyone handled and reported; only the state lags
                return notice, True
            print(
                f"  INCOMPLETE: not done after {timeout_s:.0f}s (state {state}, sent "
                f"{sent:,.0f} of {published:,}, reports applied {applied:,.0f}); "
                "reporting what was done",
                flush=True,
            )
            return notice, False
        if elapsed - last_print >= 5:
            last_print = elapsed
            print(
                f"  {elapsed:6.1f}s  {state:<10} published "
                f"{counters.get('segmenter.published', 0):>9,.0f}  sent {sent:>9,.0f}  "
                f"reports applied {applied:>9,.0f}",
                flush=True,
            )
        await asyncio.sleep(1.0)
