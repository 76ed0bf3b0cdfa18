"""Halting a notice that is sending, and resuming it: real processes, real broker and store.

What the sandbox received is the ground truth: once every person has a
receipt after a halt (sent, or halted), the sandbox holds exactly the messages
the receipts say were sent; after resuming, everyone not yet told is told, and
nobody twice.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from alimi import counters, partitions
from alimi.counters import NoticeCounts
from alimi.store import Store
from alimi_devstack import Stack, eventually
from support import approve, operator_session, statuses_of

pytestmark = pytest.mark.e2e

N = 1000
TAG = "halt-test"


@pytest.fixture
def stack_env() -> dict[str, str]:
    """Batches of ten, one at a time: sending takes seconds, so a halt lands mid-notice.

    With the defaults (100 per batch, 8 in flight) all 1,000 could be in
    flight before the halt, and the test would prove nothing.
    """
    return {"ALIMI_BATCH_SIZE": "10", "ALIMI_PREFETCH": "1"}


async def _sms_count(http: aiohttp.ClientSession, stack: Stack) -> int:
    async with http.get(f"{stack.sandbox_url}/_sandbox/sms/messages?limit=1") as resp:
        count: int = (await resp.json())["count"]
        return count


async def _post(http: aiohttp.ClientSession, url: str, **kw: Any) -> Any:
    async with http.post(url, **kw) as resp:
        assert resp.status in (200, 201), await resp.text()
        return await resp.json()


async def test_when_a_sending_notice_is_halted__then_sending_stops_and_resume_finishes_it(
    stack: Stack, store: Store
) -> None:
    approver = {"Authorization": f"Bearer {stack.api_key('approver')}"}
    async with operator_session(stack) as http:
        # Slow the provider so the notice is still sending when it is halted.
        async with http.put(
            f"{stack.sandbox_url}/_sandbox/config", json={"latency_ms": 150}
        ) as resp:
            assert resp.status == 200
        people = [
            {"external_id": f"h{i:05d}", "phone": f"010-{7000 + i}-{i:04d}", "tags": [TAG]}
            for i in range(N)
        ]
        await _post(http, f"{stack.intake_url}/v1/subjects", json=people)
        incident = {
            "title": "유출",
            "severity": "high",
            "discovered_at": "2026-11-28T09:00:00+09:00",
            "contact": "02-1588-0000",
            "notice": {
                "body": "안내: #{status_url}",
                "template": "short_notice",
                "channels": ["sms"],
            },
            "audience": {"filter": {"tags_any": [TAG]}},
        }
        created = await _post(http, f"{stack.intake_url}/v1/incidents", json=incident)
        notice_url = f"{stack.intake_url}/v1/notices/{created['notice_id']}"
        await approve(http, stack, created["notice_id"])

        async def some_sent() -> int:
            count = await _sms_count(http, stack)
            return count if count >= 100 else 0

        await eventually(some_sent, 60, "the first messages")
        halted = await _post(http, f"{notice_url}/halt", headers=approver)
        assert halted["state"] == "halted"

        # Done reacting to the halt: every person has a receipt saying what became of
        # them, a message a provider accepted or ``halted``, and the segmenter is through
        # every partition; nobody is left to send to.
        async def everyone_decided() -> NoticeCounts | None:
            notice = await store.notices.find_one({"_id": created["notice_id"]})
            assert notice is not None
            progress = (await partitions.progress_of(store, [notice]))[notice["_id"]]
            if not progress.partitions or progress.partitions_done < progress.partitions:
                return None
            counts = await counters.of_notice(store, created["notice_id"])
            return counts if counts.reached() + counts.count("halted") == N else None

        decided = await eventually(everyone_decided, 60, "a receipt for everyone after the halt")
        after_halt = await _sms_count(http, stack)
        # What did not happen: no message beyond those the receipts record as sent.
        assert after_halt == decided.reached(), "messages arrived for people halted"
        assert after_halt < N
        assert decided.count("halted") > 0

        async with http.put(f"{stack.sandbox_url}/_sandbox/config", json={"latency_ms": 5}) as resp:
            assert resp.status == 200
        resumed = await _post(http, f"{notice_url}/resume", headers=approver)
        assert resumed["state"] == "approved"

        async def everyone_told() -> int:
            return await _sms_count(http, stack) >= N

        await eventually(everyone_told, 180, "every person after resuming")
        async with http.get(f"{stack.sandbox_url}/_sandbox/sms/messages") as resp:
            numbers = [m["recipient_no"] for m in (await resp.json())["messages"]]

    assert len(numbers) == len(set(numbers)) == N  # nobody twice, nobody missed
    assert "halted" not in set((await statuses_of(store)).values())
    assert (await counters.of_notice(store, created["notice_id"])).count("halted") == 0
