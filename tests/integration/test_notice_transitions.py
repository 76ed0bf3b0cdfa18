"""Halt and resume while another writer keeps touching the notice, on the real store.

While a notice is sending, the segmenter's progress tracker updates it every
second. A halt's transaction that meets such a write gets a write conflict
(``TransientTransactionError``); the transition must run again, not answer 500.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from alimi import states
from alimi.api_keys import ApiKey
from alimi.problems import ProblemError
from alimi.store import Store
from alimi_intake import notices

APPROVER = ApiKey(key_id="key_approver", name="approver", scopes=frozenset({"notices:approve"}))
CYCLES = 10


async def test_when_the_progress_tracker_writes_meanwhile__then_halt_and_resume_still_succeed(
    store: Store,
) -> None:
    notice_id = "ntc_transitions"
    await store.notices.insert_one(
        {
            "_id": notice_id,
            "incident_id": "inc_transitions",
            "state": states.NOTICE_SENDING,
            "created_by": "key_operator",
            "created_at": datetime.now(UTC),
        }
    )
    stop = asyncio.Event()
    progress_writes = 0

    async def progress_tracker() -> None:
        nonlocal progress_writes
        while not stop.is_set():
            progress_writes += 1
            await store.notices.update_one(
                {"_id": notice_id}, {"$set": {"progress.final_receipts": progress_writes}}
            )

    trackers = [asyncio.create_task(progress_tracker()) for _ in range(2)]
    try:
        for _ in range(CYCLES):
            halted = await notices.halt(store, APPROVER, notice_id)
            assert halted["state"] == states.NOTICE_HALTED
            resumed = await notices.resume(store, APPROVER, notice_id)
            assert resumed["state"] == states.NOTICE_APPROVED
    finally:
        stop.set()
        await asyncio.gather(*trackers)

    assert progress_writes > CYCLES  # the writer really ran alongside
    entries = await store.audit.find({"target": notice_id}).sort("at", 1).to_list()
    assert [e["action"] for e in entries] == ["notice.halted", "notice.resumed"] * CYCLES
    halted_from = [states.NOTICE_SENDING] + [states.NOTICE_APPROVED] * (CYCLES - 1)
    expected_from = [s for first in halted_from for s in (first, states.NOTICE_HALTED)]
    assert [e["details"]["from"] for e in entries] == expected_from
    assert await store.outbox.count_documents({"routing_key": "notice.approved"}) == CYCLES


async def test_when_the_notice_is_not_haltable__then_the_conflict_names_its_state(
    store: Store,
) -> None:
    await store.notices.insert_one(
        {"_id": "ntc_done", "incident_id": "inc_done", "state": states.NOTICE_COMPLETED}
    )
    try:
        await notices.halt(store, APPROVER, "ntc_done")
    except ProblemError as problem:
        assert problem.status == 409
        assert "the notice is completed" in problem.detail
    else:
        raise AssertionError("a completed notice was halted")
    assert await store.audit.count_documents({"target": "ntc_done"}) == 0
