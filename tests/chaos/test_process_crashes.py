"""Processes that die or are stopped in the middle of a notice.

Real processes: a delivery worker killed with SIGKILL while it holds claimed
receipts, the segmenter killed halfway through its audience, a delivery worker
stopped with SIGTERM. Each is started again, and everyone must still be told
exactly once.
"""

from __future__ import annotations

import signal
import subprocess

import aiohttp
import pytest
from harness import Run, StartStack, load_people

from alimi.store import Store

pytestmark = pytest.mark.chaos

SLOW_PROVIDER = {
    # Each provider call takes 100-200 ms and a worker has two batches in flight,
    # so at any moment a batch is most likely between its claim and its record.
    "SANDBOX_LATENCY_MS": "100",
    "SANDBOX_LATENCY_JITTER_MS": "100",
    "ALIMI_PREFETCH": "2",
    "ALIMI_PROVIDER_TIMEOUT_S": "2",
    "ALIMI_RETRY_DELAYS_S": "0.5,1,2",
    # The claim lease is the production one (60 s): a killed worker's people are settled
    # once its heartbeat is over (2 s call + 1 s + two 2 s beats), not after the lease.
}
# A dead segmenter's partition is taken over once its lease (5 s here) is over.
# Batches of 20 make segmenting slow enough for the kill to land in its middle.
SEGMENTER_KILLED = {"ALIMI_PARTITION_LEASE_S": "5", "ALIMI_BATCH_SIZE": "20"}


async def test_when_a_delivery_worker_is_killed_mid_notice__then_everyone_is_told_exactly_once(
    start_stack: StartStack, store: Store, http: aiohttp.ClientSession
) -> None:
    n = 5000
    run = Run(start_stack(SLOW_PROVIDER), store, http)
    people = await load_people(store, n)
    notice = await run.post_notice()

    await run.freeze_mid_batch(notice, told=n // 5)
    assert run.stack.kill("delivery-sms") == -signal.SIGKILL
    # (A write it had sent before it froze may still land: count once it has.)
    claimed_by_the_dead = await run.settled_count(notice, "claimed")
    assert claimed_by_the_dead > 0
    await run.assert_under_way(notice, "the worker died")

    run.stack.start_again("delivery-sms")
    await run.wait_completed(notice)

    await run.assert_each_notified_once(notice, people)
    # The restarted worker asked the provider about the dead worker's claims
    # before sending to anyone whose claim it took over.
    metrics = await run.metrics("delivery-sms")
    assert metrics.value("alimi_delivery_in_doubt_total", channel="sms") >= claimed_by_the_dead


@pytest.mark.timeout(900)  # 20,000 people through the MongoDB-wire server of the tests
async def test_when_the_segmenter_is_killed_halfway__then_it_resumes_and_everyone_is_told_once(
    start_stack: StartStack, store: Store, http: aiohttp.ClientSession
) -> None:
    n = 20_000
    run = Run(start_stack(SEGMENTER_KILLED), store, http)
    people = await load_people(store, n)
    notice = await run.post_notice()

    async def halfway() -> bool:
        return await run.published(notice) >= n // 2

    await run.until(halfway, "the segmenter to publish half the audience", within_s=120)
    assert run.stack.kill("segmenter") == -signal.SIGKILL
    at_kill = await store.notices.find_one({"_id": notice.notice_id})
    assert at_kill is not None
    assert at_kill["state"] == "segmenting"
    assert await run.published(notice) < n, "segmenting was over before the kill"

    run.stack.start_again("segmenter")
    view = await run.wait_completed(notice, within_s=600)

    resumed = run.log_lines("segmenter", msg="resuming partition from its checkpoint")
    assert resumed and all(r["partition_id"].startswith(notice.notice_id) for r in resumed)
    await run.assert_each_notified_once(notice, people)
    assert view["notices"][0]["recipients"] == n


async def test_when_a_delivery_worker_is_stopped_mid_notice__then_it_drains_and_exits_cleanly(
    start_stack: StartStack, store: Store, http: aiohttp.ClientSession
) -> None:
    n = 600
    grace_s = 10
    run = Run(start_stack({**SLOW_PROVIDER, "ALIMI_DRAIN_GRACE_S": str(grace_s)}), store, http)
    people = await load_people(store, n)
    notice = await run.post_notice()

    await run.freeze_mid_batch(notice, told=n // 3)
    worker = run.stack.processes["delivery-sms"]
    worker.signal(signal.SIGTERM)  # taken as soon as it runs again, in the middle of a batch
    worker.signal(signal.SIGCONT)
    try:  # within its grace period, plus the time to close its connections
        exit_code = worker.popen.wait(timeout=grace_s + 10)
    except subprocess.TimeoutExpired:
        pytest.fail(f"delivery-sms still running {grace_s + 10} s after SIGTERM")
    assert exit_code == 0
    draining = run.log_lines("delivery-sms", msg="draining")
    assert draining and draining[0]["in_flight"] >= 1, "nothing was in flight to drain"
    assert not run.log_lines(
        "delivery-sms", msg="grace period over; unfinished messages go back to the queue"
    )
    # Drained: every batch it had started is recorded, none is left claimed.
    assert await run.count(notice, "claimed") == 0
    await run.assert_under_way(notice, "the worker stopped")

    run.stack.start_again("delivery-sms")
    await run.wait_completed(notice)
    await run.assert_each_notified_once(notice, people)
