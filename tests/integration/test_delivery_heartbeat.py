"""Claims name their worker, and a worker's heartbeat says whether it is alive: people
held by a worker that is gone are settled at once, not after the claim's lease; a live
worker's are looked at again in seconds; and a worker makes no provider call that could
outlast its heartbeat or its claim. Real MongoDB-wire server (its fail points hold a
command), real RabbitMQ, the sandbox over HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestServer
from chaos.harness import fail_point

from alimi import attempts, decisions, ids, recount, states, topology
from alimi.attempts import Outcome
from alimi.bus import Bus
from alimi.decisions import Where
from alimi.messages import DeliveryBatch
from alimi.store import Store
from alimi_delivery.heartbeat import Heartbeat
from alimi_delivery.sms_delivery import SmsDelivery
from support import Deliveries, sms_batch, store_as

HELD_BY = "0123456789ab"  # another worker


async def _claimed_by(store: Store, subject_id: str, worker: str) -> None:
    """A receipt claimed a moment ago by ``worker``, whose attempt is not written yet."""
    await store.receipts.insert_one(
        {
            "_id": f"ntc_1:{subject_id}",
            "subject_id": subject_id,
            "notice_id": "ntc_1",
            "attempt": "ntc_1:sms:00000001#otherworker",
            "worker": worker,
            "claimed_at": datetime.now(UTC),
        }
    )


async def _beat_until(store: Store, worker: str, until: datetime) -> None:
    await store.heartbeats.insert_one({"_id": worker, "until": until})


async def _held(bus: Bus) -> list[Any]:
    channel = await bus.channel(prefetch=10)
    queue = await channel.get_queue(bus.names(topology.held_queue("sms")))
    found = []
    while (message := await queue.get(fail=False)) is not None:
        await message.ack()
        found.append(message)
    await channel.close()
    return found


async def test_when_a_worker_claims__then_its_claims_name_it_and_its_heartbeat_is_written(
    store: Store, sandbox: TestServer, deliveries: Deliveries
) -> None:
    await deliveries.seed_notice()
    delivery = deliveries.sms()
    await delivery.handle(sms_batch(2))

    workers = {doc["worker"] async for doc in store.receipts.find({})}
    assert workers == {delivery.heartbeat.owner}
    beat = await store.heartbeats.find_one({"_id": delivery.heartbeat.owner})
    assert beat is not None and beat["until"] > datetime.now(UTC)
    assert beat["role"] == "delivery-sms" and beat["name"].startswith("delivery-sms@")


async def test_when_the_claims_worker_is_gone__then_its_people_are_settled_at_once(
    store: Store, sandbox: TestServer, bus: Bus, deliveries: Deliveries
) -> None:
    await deliveries.seed_notice()
    await _claimed_by(store, "s0", HELD_BY)
    await _beat_until(store, HELD_BY, datetime.now(UTC) - timedelta(seconds=1))

    # The claim is a second old, the lease a minute: only the heartbeat says it is over.
    await deliveries.sms(claim_lease_s=60).handle(sms_batch(2))

    assert sorted(m["recipient_no"] for m in await deliveries.inbox()) == [
        "01055550000",
        "01055550001",
    ]
    receipts = await deliveries.receipts()
    assert {r["status"] for r in receipts.values()} == {"sent"}
    assert await _held(bus) == []


async def test_when_a_gone_workers_message_reached_the_provider__then_it_is_not_sent_again(
    store: Store, sandbox: TestServer, deliveries: Deliveries
) -> None:
    await deliveries.seed_notice()
    await deliveries.sms().handle(sms_batch(1))
    # As if that worker died after the provider took the message, before its record.
    await store.attempts.delete_many({})
    await store.notice_counts.delete_many({})
    await store.receipts.update_many({}, {"$set": {"worker": HELD_BY}})

    await deliveries.sms(claim_lease_s=60).handle(sms_batch(1))

    assert len(await deliveries.inbox()) == 1
    receipt = (await deliveries.receipts())["s0"]
    assert receipt["status"] == "sent"
    assert "found at the provider" in receipt["events"][-1]["detail"]


async def test_when_the_claims_worker_never_beat__then_its_people_are_settled_at_once(
    store: Store, sandbox: TestServer, deliveries: Deliveries
) -> None:
    await deliveries.seed_notice()
    await _claimed_by(store, "s0", HELD_BY)  # and no heartbeat document at all

    await deliveries.sms(claim_lease_s=60).handle(sms_batch(1))

    assert [m["recipient_no"] for m in await deliveries.inbox()] == ["01055550000"]


async def test_when_the_claims_worker_is_alive__then_its_people_are_parked_not_sent(
    store: Store, sandbox: TestServer, bus: Bus, deliveries: Deliveries
) -> None:
    await deliveries.seed_notice()
    await _claimed_by(store, "s1", HELD_BY)
    await _beat_until(store, HELD_BY, datetime.now(UTC) + timedelta(seconds=30))

    delivery = deliveries.sms(claim_lease_s=60)
    await delivery.handle(sms_batch(2))

    assert [m["recipient_no"] for m in await deliveries.inbox()] == ["01055550000"]
    held = await _held(bus)
    assert [m.expiration for m in held] == [delivery.hold_s]
    assert delivery.hold_s < 60
    parked = DeliveryBatch.model_validate_json(held[0].body)
    assert [r.subject_id for r in parked.recipients] == ["s1"]

    # Still held when they come back: parked again under the same id, round after round
    # (an id grown by each round would pass its 120 characters and be dead-lettered).
    for _ in range(3):
        await delivery.handle(parked)
        (again,) = await _held(bus)
        parked = DeliveryBatch.model_validate_json(again.body)
        assert parked.batch_id == "ntc_1:sms:00000001:held"


async def test_when_a_live_worker_names_the_claims_attempt_abandoned__then_it_is_settled(
    store: Store, sandbox: TestServer, bus: Bus, deliveries: Deliveries
) -> None:
    await deliveries.seed_notice()
    # That worker's attempt failed before its record (the database went away), and the
    # broker gave its batch to this worker; that worker's next beat names the attempt.
    gave_up = deliveries.sms()
    gave_up.heartbeat.abandon("ntc_1:sms:00000001#otherworker")
    assert await gave_up.heartbeat.beat()
    await _claimed_by(store, "s0", gave_up.heartbeat.owner)

    await deliveries.sms(claim_lease_s=60).handle(sms_batch(1))

    assert [m["recipient_no"] for m in await deliveries.inbox()] == ["01055550000"]
    assert await _held(bus) == []


@pytest.fixture
async def heartbeat_store(mongo_url: str, namespace: str) -> AsyncIterator[Store]:
    """The database as seen by one worker's heartbeat only: an appName a fail point can
    be aimed at, and a 300 ms operation timeout."""
    store = store_as(mongo_url, namespace, f"beat-{namespace}", timeout_ms=300)
    yield store
    await fail_point(mongo_url, "off")
    await store.close()


@pytest.fixture
async def cut_off(
    deliveries: Deliveries, heartbeat_store: Store, mongo_url: str, namespace: str
) -> SmsDelivery:
    """Notice ``ntc_1``, and a delivery whose heartbeat beat once and can write no more
    beats (a fail point holds its updates). A beat vouches for 2 s + 1 s + 2 x 0.25 s =
    3.5 s; a call needs 3 s of it, so a call may start within half a second of the last
    beat. Calls carry one person, a second apart: the first starts at once, the second
    needs a beat that cannot land. Nor can it vouch for a record (5 s)."""
    await deliveries.seed_notice()
    heartbeat = Heartbeat(heartbeat_store, "delivery-sms", every_s=0.25, call_s=2)
    delivery = deliveries.sms(timeout_s=2, recipients_per_s=1, heartbeat=heartbeat)
    assert await heartbeat.beat()
    await fail_point(
        mongo_url,
        "alwaysOn",
        {
            "failCommands": ["update"],
            "blockConnection": True,
            "blockTimeMS": 2000,
            "appName": f"beat-{namespace}",
        },
    )
    return delivery


async def test_when_the_heartbeat_cannot_be_written__then_no_call_is_made_that_could_outlast_it(
    store: Store, cut_off: SmsDelivery, deliveries: Deliveries
) -> None:
    await cut_off.handle(sms_batch(2))

    assert [m["recipient_no"] for m in await deliveries.inbox()] == ["01055550000"]
    receipts = await deliveries.receipts()
    assert receipts["s0"]["status"] == "sent"
    withheld = receipts["s1"]
    assert (withheld["status"], withheld["error_code"]) == ("retrying", "withheld")
    assert not withheld.get("in_doubt")


async def test_when_people_are_taken_over_before_an_unvouched_record__then_none_counts_twice(
    store: Store, cut_off: SmsDelivery, deliveries: Deliveries
) -> None:
    # s0's call is made, s1's is withheld, and the heartbeat cannot vouch for the record.
    # Between the two, another worker that thought this one gone settles s0, found at the
    # provider.
    handling = asyncio.create_task(cut_off.handle(sms_batch(2)))
    listing = deliveries.sandbox.make_url("/_sandbox/sms/messages")
    async with deliveries.http.get(listing, params={"wait_for": "1", "wait_s": "10"}) as resp:
        [message] = (await resp.json())["messages"]  # s0's, accepted by the provider
    receipt = await store.receipts.find_one({"_id": "ntc_1:s0"})
    assert receipt is not None and not handling.done()
    found = Outcome("s0", states.SENT, message_id=message["message_id"], detail="found")
    settled = attempts.document(
        ids.attempt_id("ntc_1:sms:00000001:settle"),
        kind=attempts.SETTLE,
        notice_id="ntc_1",
        incident_id="inc_1",
        channel="sms",
        at=datetime.now(UTC),
        outcomes=[found],
    )
    where = Where("ntc_1:s0", "s0", receipt["attempt"], states.CLAIMED, "sms")
    assert await decisions.decide(store, settled, [where], shard="elsewhere") == 1
    await handling

    receipts = await deliveries.receipts()
    assert receipts["s0"]["attempt"] == settled["_id"]
    assert (receipts["s1"]["status"], receipts["s1"]["error_code"]) == ("retrying", "withheld")
    assert (await recount.repair(store, "ntc_1")).result == "agreed"


async def test_when_a_call_would_outlast_the_claims_lease__then_it_is_not_made(
    store: Store, sandbox: TestServer, deliveries: Deliveries
) -> None:
    await deliveries.seed_notice()
    # Calls of one person, a second apart; each may take 2.5 s and must end 1 s before
    # the 5 s lease: the one starting at once may, those at 1 s and 2 s may not.
    delivery = deliveries.sms(timeout_s=2.5, claim_lease_s=5, recipients_per_s=1)

    await delivery.handle(sms_batch(3))

    assert [m["recipient_no"] for m in await deliveries.inbox()] == ["01055550000"]
    receipts = await deliveries.receipts()
    for withheld in (receipts["s1"], receipts["s2"]):
        assert (withheld["status"], withheld["error_code"]) == ("retrying", "withheld")
