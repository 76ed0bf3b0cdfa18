"""One notice shared by several segmenters and delivery replicas, under faults.

Two segmenter processes and two SMS delivery processes work the same notice,
split into partitions of its audience. The segmenter that owns a running
partition is killed with SIGKILL, and the notice's approval is published again
by hand (as a broker redelivery would): the other segmenter takes the dead
one's partition over once its lease is over and resumes it from its
checkpoint, the duplicate approval runs nothing twice, and everyone is told
exactly once.
"""

from __future__ import annotations

import re
import signal
from datetime import UTC, datetime
from typing import Any

import aio_pika
import aiohttp
import pytest
from harness import Notice, Run, StartStack, load_people

from alimi import partitions, topology
from alimi.messages import NoticeApproved
from alimi.store import Store

pytestmark = pytest.mark.chaos

SEGMENTERS = ("segmenter", "segmenter.2")
SCALE_OUT_REPLICAS = {"segmenter": 2, "delivery-sms": 2}

SCALE_OUT = {
    # 20,000 people in partitions of 5,000: four partitions for two segmenters.
    "ALIMI_PARTITION_PEOPLE": "5000",
    # A dead segmenter's partition is taken over once its lease (5 s here) is over.
    "ALIMI_PARTITION_LEASE_S": "5",
    # Batches of 20 make segmenting slow enough for the kill to land in a partition.
    "ALIMI_BATCH_SIZE": "20",
}


@pytest.mark.timeout(900)  # 20,000 people through the MongoDB-wire server of the tests
async def test_when_a_segmenter_dies_mid_partition_and_the_approval_comes_again__then_everyone_is_told_once(  # noqa: E501
    start_stack: StartStack, store: Store, http: aiohttp.ClientSession
) -> None:
    n = 20_000
    run = Run(start_stack(SCALE_OUT, replicas=SCALE_OUT_REPLICAS), store, http)
    people = await load_people(store, n)
    notice = await run.post_notice()

    victim, partition_id = await run.until(
        lambda: _running_partition_owner(run, notice),
        "a partition under way, with a checkpoint, in a segmenter's hands",
        within_s=120,
    )
    assert run.stack.kill(victim) == -signal.SIGKILL
    await run.assert_under_way(notice, "the segmenter died")
    left = await store.partitions.find_one({"_id": partition_id})
    assert left is not None and left["state"] != partitions.DONE

    # The approval again, while the surviving segmenter is at work.
    await _publish_approval_again(run, notice)

    view = await run.wait_completed(notice, within_s=600)

    survivor = next(name for name in SEGMENTERS if name != victim)
    resumed = run.log_lines(survivor, msg="resuming partition from its checkpoint")
    assert partition_id in {r["partition_id"] for r in resumed}, resumed
    await run.assert_each_notified_once(notice, people)
    done = await store.notices.find_one({"_id": notice.notice_id})
    assert done is not None
    parts = [p async for p in store.partitions.find({"notice_id": notice.notice_id})]
    assert len(parts) >= 4
    assert all(p["state"] == partitions.DONE for p in parts)
    assert view["notices"][0]["recipients"] == n
    assert view["notices"][0]["people"] == n
    # Both delivery replicas shared the notice.
    for worker in ("delivery-sms", "delivery-sms.2"):
        assert await run.sent_by(worker) > 0, f"{worker} sent nothing"


async def _running_partition_owner(run: Run, notice: Notice) -> tuple[str, str] | None:
    """(process name, partition id) of a segmenter holding a running partition of
    ``notice`` that has saved a checkpoint, or None."""
    pids = {run.stack.processes[name].popen.pid: name for name in SEGMENTERS}
    async for part in run.store.partitions.find(
        {"notice_id": notice.notice_id, "state": partitions.RUNNING}
    ):
        owner = (part.get("lease") or {}).get("owner") or ""
        found = re.search(r":(\d+)#", owner)
        if found and int(found[1]) in pids and _has_checkpoint(part):
            return pids[int(found[1])], str(part["_id"])
    return None


def _has_checkpoint(part: dict[str, Any]) -> bool:
    return bool((part.get("checkpoint") or {}).get("last_phone_hash"))


async def _publish_approval_again(run: Run, notice: Notice) -> None:
    """``notice.approved`` for ``notice`` once more, as a redelivery would bring it."""
    message = NoticeApproved(
        notice_id=notice.notice_id,
        incident_id=notice.incident_id,
        approved_at=datetime.now(UTC),
    )
    names = topology.Names(run.stack.namespace)
    connection = await aio_pika.connect(run.stack.amqp_url)
    async with connection:
        channel = await connection.channel()
        exchange = await channel.get_exchange(names(topology.EVENTS))
        await exchange.publish(
            aio_pika.Message(
                message.model_dump_json().encode(),
                message_id=f"{notice.notice_id}.approved.again",
                content_type="application/json",
            ),
            routing_key=topology.NOTICE_APPROVED,
        )
