"""Partitions: one notice shared by several segmenters, one owner for each piece of work.

Real MongoDB-wire server and RabbitMQ; the segmenter's functions in-process, as
several replicas would call them.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
from datetime import UTC, datetime, timedelta

from alimi import leases, partitions, phone, topology
from alimi.audience import AudienceSpec
from alimi.bus import Bus
from alimi.counters import Shards
from alimi.crypto import Keyring
from alimi.messages import NoticeApproved, NoticePartition, parse
from alimi.store import Store
from alimi_segmenter import planner, progress, service
from alimi_segmenter.checkpoint import Checkpoint, LeaseLost

KEY = b"test-key"
KEYRING = Keyring.from_keys({"t1": os.urandom(32)})
PEOPLE = 400


async def _seed(store: Store, n: int = PEOPLE) -> None:
    docs = []
    for i in range(n):
        number = f"+82105{i // 2:07d}"  # two people per number: merged in one partition
        sid = f"s{i:04d}"
        docs.append(
            {
                "_id": sid,
                "name": f"n-{sid}",
                "phone_enc": phone.seal(KEYRING, sid, number),
                "phone_hash": phone.lookup_hash(number, KEY),
                "tags": ["a"],
            }
        )
    docs.append({"_id": "nophone", "phone_enc": None, "phone_hash": None, "tags": ["a"]})
    await store.subjects.insert_many(docs)
    await store.ensure_indexes(
        "subjects", "notices", "partitions", "leases", "receipts", "attempts", "notice_counts"
    )
    await store.notices.insert_one(
        {
            "_id": "ntc_p",
            "incident_id": "inc_p",
            "seq": 1,
            "state": "approved",
            "body": "hi",
            "audience": {"filter": {"tags_any": ["a"]}},
            "channels": ["sms"],
            "created_at": datetime.now(UTC),
        }
    )


def _event() -> NoticeApproved:
    return NoticeApproved(notice_id="ntc_p", incident_id="inc_p", approved_at=datetime.now(UTC))


async def _plan(store: Store, bus: Bus, per: int = 100) -> int:
    return await planner.plan(store, bus, _event(), people_per_partition=per, most_partitions=64)


async def _taken(bus: Bus, queue: str) -> list[bytes]:
    channel = await bus.channel(prefetch=100)
    declared = await channel.get_queue(bus.names(queue))
    bodies = []
    while (message := await declared.get(fail=False)) is not None:
        await message.ack()
        bodies.append(message.body)
    await channel.close()
    return bodies


async def _partition_messages(bus: Bus) -> list[NoticePartition]:
    return [parse(b, NoticePartition) for b in await _taken(bus, topology.PARTITIONS_QUEUE)]


async def _recipients(bus: Bus) -> list[str]:
    batches = [json.loads(b) for b in await _taken(bus, topology.delivery_queue("sms"))]
    return [r["subject_id"] for b in batches for r in b["recipients"]]


async def _run(
    store: Store, bus: Bus, message: NoticePartition, owner: str, lease_s: float = 30
) -> str:
    return await service.segment_partition(
        store,
        bus,
        message,
        owner=owner,
        lease_s=lease_s,
        batch_size=50,
        keyring=KEYRING,
        shards=Shards(owner, slots=1),
    )


async def test_when_a_notice_is_planned__then_its_audience_is_split_into_phone_hash_ranges(
    store: Store, bus: Bus
) -> None:
    await _seed(store)
    assert await _plan(store, bus, per=100) == 5  # 401 people, 100 per partition
    messages = await _partition_messages(bus)
    assert [m.index for m in messages] == [0, 1, 2, 3, 4]
    notice = await store.notices.find_one({"_id": "ntc_p"})
    assert notice is not None
    assert (notice["state"], notice["run"], notice["partitions"]) == ("segmenting", 1, 5)
    parts = await store.partitions.find({"notice_id": "ntc_p"}).sort("index", 1).to_list()
    assert parts[0]["lo"] == "" and parts[-1]["hi"] is None
    assert all(a["hi"] == b["lo"] for a, b in itertools.pairwise(parts))

    outcomes = [await _run(store, bus, m, owner=f"seg-{m.index % 2}") for m in messages]

    assert outcomes == ["done"] * 5
    people = await _recipients(bus)
    assert len(people) == len(set(people)) == PEOPLE // 2  # one per number, every number once
    notice = await store.notices.find_one({"_id": "ntc_p"})
    assert notice is not None and notice["state"] == "sending"
    total = (await partitions.progress_of(store, [notice]))["ntc_p"]
    assert (total.recipients_published, total.deduplicated, total.skipped_no_phone) == (
        PEOPLE // 2,
        PEOPLE // 2,
        1,
    )
    assert (total.people, total.partitions, total.partitions_done) == (PEOPLE + 1, 5, 5)


async def test_when_the_approval_is_redelivered_while_partitions_run__then_nothing_runs_twice(
    store: Store, bus: Bus
) -> None:
    await _seed(store)
    await _plan(store, bus, per=200)
    first = await _partition_messages(bus)
    # One replica is in the middle of partition 0 (it holds its lease).
    assert await leases.take(store.partitions, first[0].partition_id, "seg-a", 30)

    assert await _plan(store, bus, per=200) == len(first)  # the redelivered approval
    again = await _partition_messages(bus)
    assert [m.partition_id for m in again] == [m.partition_id for m in first]
    notice = await store.notices.find_one({"_id": "ntc_p"})
    assert notice is not None and notice["run"] == 1  # not planned a second time

    # The redelivered message of the owned partition is acknowledged and logged, not run.
    assert await _run(store, bus, again[0], owner="seg-b") == "owned"
    assert await _recipients(bus) == []
    # Another partition runs once; its redelivered message then finds it done.
    assert await _run(store, bus, again[1], owner="seg-b") == "done"
    assert await _run(store, bus, first[1], owner="seg-c") == "already_done"
    people = await _recipients(bus)
    assert len(people) == len(set(people)) > 0


async def test_when_two_segmenters_race_for_one_partition__then_one_segments_it(
    store: Store, bus: Bus
) -> None:
    await _seed(store)
    await _plan(store, bus, per=1000)
    [message] = await _partition_messages(bus)

    outcomes = await asyncio.gather(
        _run(store, bus, message, owner="seg-a"), _run(store, bus, message, owner="seg-b")
    )

    assert sorted(outcomes) in (["done", "owned"], ["already_done", "done"])
    people = await _recipients(bus)
    assert len(people) == len(set(people)) == PEOPLE // 2


async def test_when_one_segmenter_gets_two_copies_of_a_partition_at_once__then_one_runs(
    store: Store, bus: Bus
) -> None:
    # One process, prefetch > 1: a partition published again while its first copy waited
    # in the queue reaches the same process while the first copy is still running.
    await _seed(store, n=4000)
    await _plan(store, bus, per=10_000)
    [message] = await _partition_messages(bus)
    first = asyncio.create_task(_run(store, bus, message, owner="seg-a"))
    running = {"_id": message.partition_id, "state": "running"}
    while not await store.partitions.find_one(running):
        assert not first.done(), "the first copy ended before it was seen running"
        await asyncio.sleep(0.01)

    second = await _run(store, bus, message, owner="seg-a")

    assert (second, await first) == ("owned", "done")
    people = await _recipients(bus)
    assert len(people) == len(set(people)) == 2000
    notice = await store.notices.find_one({"_id": "ntc_p"})
    assert notice is not None
    total = (await partitions.progress_of(store, [notice]))["ntc_p"]
    assert total.recipients_published == 2000


async def test_when_an_owner_stops_renewing__then_another_takes_over_from_its_checkpoint(
    store: Store, bus: Bus
) -> None:
    await _seed(store)
    await _plan(store, bus, per=1000)
    [message] = await _partition_messages(bus)
    # seg-a took the partition, published up to a checkpoint, then stopped (killed).
    assert await leases.take(store.partitions, message.partition_id, "seg-a", 0.2)
    part = await store.partitions.find_one({"_id": message.partition_id})
    assert part is not None
    stale = Checkpoint(store, message.partition_id, owner="seg-a", lease_s=0.2)
    hashes = sorted(
        [d["phone_hash"] async for d in store.subjects.find({"phone_hash": {"$ne": None}})]
    )
    stale.count("recipients_published", 60)
    stale.move(last_phone_hash=hashes[119], next_seq=3, no_phone_done=True)  # 60 numbers
    await stale.save(state="running")
    assert await _run(store, bus, message, owner="seg-b") == "owned"  # its lease is live
    await asyncio.sleep(0.3)

    assert await _run(store, bus, message, owner="seg-b") == "done"  # taken over
    people = await _recipients(bus)
    assert len(people) == len(set(people)) == PEOPLE // 2 - 60  # only what was left
    with_stale_lease = Checkpoint(store, message.partition_id, owner="seg-a", lease_s=30)
    with_stale_lease.count("recipients_published", 10)
    try:
        await with_stale_lease.save()
        raise AssertionError("a replica that lost its lease could still write")
    except LeaseLost:
        pass
    notice = await store.notices.find_one({"_id": "ntc_p"})
    assert notice is not None
    total = (await partitions.progress_of(store, [notice]))["ntc_p"]
    assert total.recipients_published == PEOPLE // 2  # 60 before, the rest after, once each


async def test_when_a_partitions_owner_died__then_the_tracker_publishes_it_again(
    store: Store, bus: Bus
) -> None:
    await _seed(store)
    await _plan(store, bus, per=1000)
    [message] = await _partition_messages(bus)
    long_ago = datetime.now(UTC) - timedelta(minutes=5)
    await store.partitions.update_one(
        {"_id": message.partition_id},
        {
            "$set": {
                "state": "running",
                "created_at": long_ago,
                "lease": {"owner": "seg-dead", "until": long_ago},
            }
        },
    )
    tracker = progress.Tracker(store, bus)

    assert await tracker.sweep_partitions() == 1
    assert await tracker.sweep_partitions() == 0  # not again right away
    [again] = await _partition_messages(bus)
    assert again.partition_id == message.partition_id
    assert await _run(store, bus, again, owner="seg-b") == "done"


async def test_when_the_audience_cannot_be_resolved__then_the_notice_fails_with_the_reason(
    store: Store, bus: Bus
) -> None:
    await _seed(store)
    await store.notices.update_one(
        {"_id": "ntc_p"}, {"$set": {"audience": {"filter": {"tags_any": []}}}}
    )
    assert await _plan(store, bus) == 0
    notice = await store.notices.find_one({"_id": "ntc_p"})
    assert notice is not None
    assert notice["state"] == "failed"
    assert "audience cannot be resolved" in notice["failure"]
    assert await _partition_messages(bus) == []


async def test_when_a_notice_is_resumed__then_a_new_run_counts_from_zero(
    store: Store, bus: Bus
) -> None:
    await _seed(store)
    await service.segment_notice(store, bus, notice_id="ntc_p", batch_size=50, keyring=KEYRING)
    await store.notices.update_one({"_id": "ntc_p"}, {"$set": {"state": "approved"}})  # resumed
    await service.segment_notice(store, bus, notice_id="ntc_p", batch_size=50, keyring=KEYRING)
    notice = await store.notices.find_one({"_id": "ntc_p"})
    assert notice is not None and notice["run"] == 2
    total = (await partitions.progress_of(store, [notice]))["ntc_p"]
    assert total.recipients_published == PEOPLE // 2  # this run's, not both runs'


async def test_when_a_notice_is_planned__then_its_partitions_come_from_a_bound_not_a_count(
    store: Store,
) -> None:
    """The planner reads nobody: ids given, a list's member count, or the directory's size."""
    await _seed(store)  # 401 subjects, all tagged "a"
    await store.subjects.insert_many([{"_id": f"other{i}", "tags": ["b"]} for i in range(99)])
    await store.lists.insert_one({"_id": "lst_0123456789abcdef0123", "members": 37})

    def spec(**audience: object) -> AudienceSpec:
        return AudienceSpec.model_validate(audience)

    # A filter matching one person is bounded by the whole directory (500 subjects).
    assert await planner.size_bound(store, spec(filter={"tags_any": ["b"]})) == 500
    assert await planner.size_bound(store, spec(subject_ids=["s0001", "s0002", "s0001"])) == 2
    assert (
        await planner.size_bound(
            store, spec(list_id="lst_0123456789abcdef0123", subject_ids=["s0001"])
        )
        == 38
    )


async def test_when_an_untaken_partition_waits_its_turn__then_it_is_not_published_again(
    store: Store, bus: Bus
) -> None:
    await _seed(store)
    await _plan(store, bus, per=1000)  # its message waits in the partitions queue
    long_ago = datetime.now(UTC) - timedelta(minutes=5)
    await store.partitions.update_many({}, {"$set": {"created_at": long_ago}})
    tracker = progress.Tracker(store, bus)

    assert await tracker.sweep_partitions() == 0  # queued behind others: left alone
    [message] = await _partition_messages(bus)  # the queue is empty now: as if it was lost
    assert await tracker.sweep_partitions() == 1
    [again] = await _partition_messages(bus)
    assert again.partition_id == message.partition_id
