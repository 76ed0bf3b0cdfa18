"""Halt and resume while another writer keeps touching the notice, on the real store.

While a notice is sending, the segmenter's progress tracker updates it every
second. A halt's transaction that meets such a write gets a write conflict
(``TransientTransactionError``); the transition must run again, not answer 500.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from pymongo import monitoring

from alimi import states
from alimi.api_keys import ApiKey
from alimi.problems import ProblemError
from alimi.store import Store
from alimi_intake import notices

APPROVER = ApiKey(key_id="key_approver", name="approver", scopes=frozenset({"notices:approve"}))
# Halt and resume until this many write conflicts were met (and run again).
CONFLICTS = 3
MAX_CYCLES = 200


class WriteConflicts(monitoring.CommandListener):
    """Counts the commands the server refused with a write conflict."""

    def __init__(self) -> None:
        self.count = 0

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        pass

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        if isinstance(event.failure, dict) and event.failure.get("codeName") == "WriteConflict":
            self.count += 1


@pytest.fixture
async def watched(mongo_url: str, namespace: str) -> AsyncIterator[tuple[Store, WriteConflicts]]:
    """A store on the test's database whose write conflicts are counted."""
    conflicts = WriteConflicts()
    store = Store(mongo_url, namespace, event_listeners=[conflicts])
    yield store, conflicts
    await store.close()


async def test_when_the_progress_tracker_writes_meanwhile__then_halt_and_resume_still_succeed(
    store: Store, watched: tuple[Store, WriteConflicts]
) -> None:
    intake_store, conflicts = watched
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

    async def progress_tracker() -> None:
        written = 0
        while not stop.is_set():
            written += 1
            await store.notices.update_one(
                {"_id": notice_id}, {"$set": {"progress.final_receipts": written}}
            )

    trackers = [asyncio.create_task(progress_tracker()) for _ in range(2)]
    cycles = 0
    try:
        while conflicts.count < CONFLICTS and cycles < MAX_CYCLES:
            cycles += 1
            halted = await notices.halt(intake_store, APPROVER, notice_id)
            assert halted["state"] == states.NOTICE_HALTED
            resumed = await notices.resume(intake_store, APPROVER, notice_id)
            assert resumed["state"] == states.NOTICE_APPROVED
    finally:
        stop.set()
        await asyncio.gather(*trackers)

    # The transitions met conflicts and got through them.
    assert conflicts.count >= CONFLICTS, f"{cycles} cycles met only {conflicts.count} conflicts"
    entries = await store.audit.find({"target": notice_id}).sort("at", 1).to_list()
    assert [e["action"] for e in entries] == ["notice.halted", "notice.resumed"] * cycles
    halted_from = [states.NOTICE_SENDING] + [states.NOTICE_APPROVED] * (cycles - 1)
    expected_from = [s for first in halted_from for s in (first, states.NOTICE_HALTED)]
    assert [e["details"]["from"] for e in entries] == expected_from
    assert await store.outbox.count_documents({"routing_key": "notice.approved"}) == cycles


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
