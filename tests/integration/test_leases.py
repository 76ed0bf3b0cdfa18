"""One owner at a time: leases on documents, taken over only once they are over."""

from __future__ import annotations

import asyncio

from alimi import leases
from alimi.store import Store


async def test_when_a_named_lease_is_held__then_nobody_else_gets_it_until_it_is_over(
    store: Store,
) -> None:
    first = leases.Named(store, "tracker", "seg-a", ttl_s=0.3)
    second = leases.Named(store, "tracker", "seg-b", ttl_s=0.3)
    assert await first.acquire()
    assert await first.acquire()  # renewed by its holder
    assert not await second.acquire()
    assert await second.holder() == "seg-a"

    await asyncio.sleep(0.4)  # seg-a stopped renewing (it died)

    assert await second.acquire()
    assert not await first.acquire()
    await second.release()
    assert await second.holder() is None
    assert await first.acquire()


async def test_when_two_take_a_documents_lease_at_once__then_one_gets_it(store: Store) -> None:
    await store.partitions.insert_one({"_id": "p1", "lease": leases.free(), "state": "pending"})
    won = await asyncio.gather(
        *(leases.take(store.partitions, "p1", f"seg-{i}", 30) for i in range(5))
    )
    assert won.count(True) == 1


async def test_when_a_lease_is_renewed_by_someone_else__then_nothing_is_written(
    store: Store,
) -> None:
    await store.partitions.insert_one({"_id": "p1", "lease": leases.free(), "n": 0})
    assert await leases.take(store.partitions, "p1", "seg-a", 30)
    assert not await leases.renew(store.partitions, "p1", "seg-b", 30, inc={"n": 1})
    assert await leases.renew(store.partitions, "p1", "seg-a", 30, inc={"n": 1})
    doc = await store.partitions.find_one({"_id": "p1"})
    assert doc is not None and doc["n"] == 1


async def test_when_the_work_is_done__then_a_lease_with_a_condition_is_not_taken(
    store: Store,
) -> None:
    await store.partitions.insert_one({"_id": "p1", "lease": leases.free(), "state": "done"})
    assert not await leases.take(
        store.partitions, "p1", "seg-a", 30, where={"state": {"$ne": "done"}}
    )
