"""Delivery under faults: retries through delay queues, dead letters, the breaker,
attempts in doubt and claims of workers that died. Real MongoDB-wire server, real
RabbitMQ, the sandbox over HTTP."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from chaos.harness import fail_point
from pymongo.errors import PyMongoError

from alimi import topology
from alimi.bus import ERROR_HEADER, Bus
from alimi.messages import DeliveryBatch
from alimi.store import Store
from alimi_delivery.guard import OPEN
from support import Deliveries, receipts_of, sms_batch, take_batches


async def test_when_the_last_retry_fails__then_the_batch_is_dead_lettered_and_receipts_fail(
    store: Store,
    http: aiohttp.ClientSession,
    sandbox: TestServer,
    bus: Bus,
    deliveries: Deliveries,
) -> None:
    await deliveries.seed_notice()
    await deliveries.configure(error_rate=1.0)
    await deliveries.sms().handle(sms_batch(attempt=4))  # three retry steps already spent

    receipts = await deliveries.receipts()
    assert {r["status"] for r in receipts.values()} == {"failed"}
    assert all(r["dead_lettered"] for r in receipts.values())
    assert all("gave up after 4 attempts: http_500" in r["error"] for r in receipts.values())
    channel = await bus.channel(prefetch=10)
    queue = await channel.get_queue(bus.names(topology.dead_queue("delivery.sms")))
    message = await queue.get()
    assert "gave up after 4 attempts" in str(message.headers[ERROR_HEADER])
    await message.ack()
    await channel.close()
    assert await take_batches(bus, topology.retry_queue("sms", 1)) == []


async def test_when_calls_keep_failing__then_the_breaker_opens_and_stops_calling(
    store: Store,
    http: aiohttp.ClientSession,
    sandbox: TestServer,
    bus: Bus,
    deliveries: Deliveries,
) -> None:
    await deliveries.seed_notice()
    await deliveries.configure(error_rate=1.0)
    delivery = deliveries.sms(breaker_failures=2, breaker_cooldown_s=60)
    await delivery.handle(sms_batch(1))
    await store.receipts.delete_many({})
    await delivery.handle(sms_batch(1))
    assert delivery.guard.breaker.state == OPEN
    await store.receipts.delete_many({})
    await deliveries.configure(error_rate=0.0)  # recovered, but the breaker is cooling down
    await delivery.handle(sms_batch(1))
    receipt = (await deliveries.receipts())["s0"]
    assert (receipt["status"], receipt["error_code"]) == ("retrying", "breaker_open")
    assert await deliveries.inbox() == []
    assert len(await take_batches(bus, topology.retry_queue("sms", 1))) == 3


async def test_when_a_worker_died_after_the_provider_took_the_message__then_it_is_not_sent_again(
    store: Store, http: aiohttp.ClientSession, sandbox: TestServer, deliveries: Deliveries
) -> None:
    await deliveries.seed_notice()
    delivery = deliveries.sms(claim_lease_s=10)
    await delivery.handle(sms_batch(2))
    # As if the worker died after the provider answered, before its attempt was written:
    # the receipts are claimed by an attempt with no document, older than the lease.
    long_ago = datetime.now(UTC) - timedelta(seconds=60)
    await store.attempts.delete_many({})
    await store.notice_counts.delete_many({})
    await store.receipts.update_many({}, {"$set": {"claimed_at": long_ago}})
    await delivery.handle(sms_batch(3))  # the batch comes back, with one person never sent

    inbox = await deliveries.inbox()
    assert sorted(m["recipient_no"] for m in inbox) == ["01055550000", "01055550001", "01055550002"]
    receipts = await deliveries.receipts()
    assert {r["status"] for r in receipts.values()} == {"sent"}
    by_key = {m["grouping_key"]: m["message_id"] for m in inbox}
    assert all(r["provider_message_id"] == by_key[r["_id"]] for r in receipts.values())
    assert "found at the provider" in receipts["s0"]["events"][-1]["detail"]


async def test_when_a_worker_died_before_sending__then_the_stale_claim_is_taken_over(
    store: Store, http: aiohttp.ClientSession, sandbox: TestServer, deliveries: Deliveries
) -> None:
    await deliveries.seed_notice()
    long_ago = datetime.now(UTC) - timedelta(seconds=60)
    await store.receipts.insert_one(
        {
            "_id": "ntc_1:s0",
            "subject_id": "s0",
            "notice_id": "ntc_1",
            "attempt": "ntc_1:sms:00000001#dead0worker",  # never written: its worker died
            "claimed_at": long_ago,
        }
    )
    await deliveries.sms(claim_lease_s=10).handle(sms_batch(1))
    assert [m["recipient_no"] for m in await deliveries.inbox()] == ["01055550000"]
    assert (await deliveries.receipts())["s0"]["status"] == "sent"


async def test_when_a_fresh_claim_holds_someone__then_they_are_looked_at_again_in_seconds(
    store: Store,
    http: aiohttp.ClientSession,
    sandbox: TestServer,
    bus: Bus,
    deliveries: Deliveries,
) -> None:
    await deliveries.seed_notice()
    await store.receipts.insert_one(
        {
            "_id": "ntc_1:s1",
            "subject_id": "s1",
            "notice_id": "ntc_1",
            "attempt": "ntc_1:sms:00000001#liveworker",  # in flight in another worker
            "claimed_at": datetime.now(UTC),
        }
    )
    delivery = deliveries.sms(claim_lease_s=20, delays_s=(5.0, 30.0, 300.0))
    await delivery.handle(sms_batch(2))
    assert [m["recipient_no"] for m in await deliveries.inbox()] == ["01055550000"]
    # Back in half a heartbeat's span (5 s with a 5 s provider timeout), to be looked at
    # again: not after the lease, nor after the retry step (30 s here).
    channel = await bus.channel(prefetch=1)
    queue = await channel.get_queue(bus.names(topology.held_queue("sms")))
    message = await queue.get(fail=False)
    assert message is not None and message.expiration == delivery.hold_s == 5
    await message.ack()
    await channel.close()
    parked = DeliveryBatch.model_validate_json(message.body)
    assert [r.subject_id for r in parked.recipients] == ["s1"]
    assert parked.batch_id == "ntc_1:sms:00000001:held"


async def test_when_the_provider_took_the_message_but_timed_out__then_the_retry_asks_first(
    store: Store,
    http: aiohttp.ClientSession,
    sandbox: TestServer,
    bus: Bus,
    deliveries: Deliveries,
) -> None:
    await deliveries.seed_notice()
    await deliveries.configure(timeout_rate=1.0, hang_ms=2000)
    delivery = deliveries.sms(timeout_s=0.3, claim_lease_s=10)
    await delivery.handle(sms_batch(2))
    receipts = await deliveries.receipts()
    assert {(r["status"], r["error_code"], r["in_doubt"]) for r in receipts.values()} == {
        ("retrying", "timeout", True)
    }
    assert len(await deliveries.inbox()) == 2  # the provider did take them

    await deliveries.configure(timeout_rate=0.0)
    [again] = await take_batches(bus, topology.retry_queue("sms", 1))
    await delivery.handle(again)
    assert len(await deliveries.inbox()) == 2  # asked, found, not sent again
    receipts = await receipts_of(store)
    assert {r["status"] for r in receipts.values()} == {"sent"}
    assert all("in_doubt" not in r for r in receipts.values())


async def test_when_a_kakao_call_timed_out_after_acceptance__then_no_second_message_follows(
    store: Store,
    http: aiohttp.ClientSession,
    sandbox: TestServer,
    bus: Bus,
    deliveries: Deliveries,
) -> None:
    await deliveries.seed_notice()
    await deliveries.configure(timeout_rate=1.0, hang_ms=2000)
    delivery = deliveries.kakao(timeout_s=0.3, claim_lease_s=10)
    batch = sms_batch(1).model_copy(update={"channel": "kakao", "batch_id": "ntc_1:kakao:00000001"})
    await delivery.handle(batch)
    await deliveries.configure(timeout_rate=0.0)
    [again] = await take_batches(bus, topology.retry_queue("kakao", 1))
    await delivery.handle(again)
    async with http.get(sandbox.make_url("/_sandbox/kakao/messages")) as resp:
        assert (await resp.json())["count"] == 1
    assert (await deliveries.receipts())["s0"]["status"] == "sent"


async def test_when_the_provider_rate_limits__then_its_retry_after_holds_back_the_retry(
    store: Store,
    http: aiohttp.ClientSession,
    sandbox: TestServer,
    bus: Bus,
    deliveries: Deliveries,
) -> None:
    await deliveries.seed_notice()
    await deliveries.configure(rate_limit_rate=1.0, retry_after_s=7)
    delivery = deliveries.sms(delays_s=(1.0, 2.0, 3.0))
    await delivery.handle(sms_batch(1))
    assert delivery.guard.requests.wait_time(1) > 5  # the account pauses for Retry-After
    channel = await bus.channel(prefetch=1)
    queue = await channel.get_queue(bus.names(topology.retry_queue("sms", 1)))
    message = await queue.get()
    # It waits out Retry-After (7 s, in seconds), not the first step's 1 s.
    assert message.expiration == 7.0
    await message.ack()
    await channel.close()


async def test_when_an_attempt_failed_after_the_provider_took_it__then_its_redelivery_settles_at_once(  # noqa: E501
    store: Store,
    mongo_url: str,
    namespace: str,
    bus: Bus,
    http: aiohttp.ClientSession,
    sandbox: TestServer,
) -> None:
    # The delivery's own connection, so that a fail point hits its writes alone.
    failing = Store(
        f"{mongo_url}{'&' if '?' in mongo_url else '?'}appName=f-{namespace}", namespace
    )
    deliveries = Deliveries(failing, bus, http, sandbox)
    await deliveries.seed_notice()
    delivery = deliveries.sms(claim_lease_s=60)
    try:
        await fail_point(
            mongo_url,
            {"times": 1},
            {"failCommands": ["commitTransaction"], "errorCode": 1, "appName": f"f-{namespace}"},
        )
        with pytest.raises(PyMongoError):
            await delivery.handle(sms_batch(2))  # sent, then its record failed
        await delivery.handle(sms_batch(2))  # the broker's redelivery, right away
    finally:
        await fail_point(mongo_url, "off")
        await failing.close()

    assert len(await deliveries.inbox()) == 2  # asked, found, not sent again
    receipts = await receipts_of(store)
    assert {r["status"] for r in receipts.values()} == {"sent"}
    assert await take_batches(bus, topology.held_queue("sms")) == []
