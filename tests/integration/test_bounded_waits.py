"""Every wait on a dependency is bounded, and the error says which bound ran out: the
database (``ALIMI_MONGO_TIMEOUT_MS``), the broker (``ALIMI_AMQP_TIMEOUT_S``) and the
providers (``ALIMI_PROVIDER_TIMEOUT_S``). A handler whose call times out is retried
by the consumer's normal path. Real MongoDB-wire server (its fail points hold a
command or fail it), real RabbitMQ (directly, or through a proxy that can stall it),
the sandbox over HTTP."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pymongo
import pytest
from chaos.harness import fail_point
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import PyMongoError
from stalling_proxy import StallingProxy, stalling_proxy
from yarl import URL

from alimi import topology
from alimi.bus import BrokerTimeout, Bus, Consumer
from alimi.messages import NoticeApproved
from alimi.poison import FAILURES_HEADER, PoisonPolicy
from alimi.store import Store
from alimi_delivery.sms_client import SmsClient, SmsMessage
from alimi_intake.repository import count_list_members
from support import store_as


@pytest.fixture
async def slow_store(mongo_url: str, namespace: str) -> AsyncIterator[Store]:
    """A store as a service builds it, with a 300 ms operation timeout and an appName a
    fail point can be aimed at; the fail point is switched off afterwards."""
    store = store_as(mongo_url, namespace, f"slow-{namespace}", timeout_ms=300)
    yield store
    await fail_point(mongo_url, "off")
    await store.close()


async def _hold_finds(mongo_url: str, namespace: str, times: int) -> None:
    await fail_point(
        mongo_url,
        {"times": times},
        {
            "failCommands": ["find"],
            "blockConnection": True,
            "blockTimeMS": 2000,
            "appName": f"slow-{namespace}",
        },
    )


async def test_when_a_database_call_hangs__then_it_times_out_naming_the_bound(
    slow_store: Store, mongo_url: str, namespace: str
) -> None:
    await _hold_finds(mongo_url, namespace, times=1)
    with pytest.raises(PyMongoError) as timed_out:
        await slow_store.notices.find_one({"_id": "ntc_1"})
    assert timed_out.value.timeout, timed_out.value
    assert "timeoutMS: 300" in str(timed_out.value), str(timed_out.value)


async def _fail_commits(mongo_url: str, namespace: str, mode: Any, **error: Any) -> None:
    await fail_point(
        mongo_url,
        mode,
        {"failCommands": ["commitTransaction"], "appName": f"slow-{namespace}", **error},
    )


WRITE_CONFLICT = {"errorCode": 112, "errorLabels": ["TransientTransactionError"]}
# A commit whose result is unknown: PyMongo commits again, and again.
SHUTTING_DOWN = {"errorCode": 91, "errorLabels": ["RetryableWriteError"]}


@pytest.mark.parametrize("error", [WRITE_CONFLICT, SHUTTING_DOWN], ids=["conflict", "unknown"])
async def test_when_a_transaction_keeps_failing_to_commit__then_it_gives_up_within_the_bound(
    store: Store, slow_store: Store, mongo_url: str, namespace: str, error: dict[str, Any]
) -> None:
    await _fail_commits(mongo_url, namespace, "alwaysOn", **error)
    runs = 0

    async def work(session: AsyncClientSession) -> None:
        nonlocal runs
        runs += 1
        await slow_store.audit.insert_one({"run": runs}, session=session)

    started = time.monotonic()
    with pytest.raises(PyMongoError) as timed_out:
        # PyMongo alone keeps trying for 120 s
        await asyncio.wait_for(slow_store.in_transaction(work), 10)
    took = time.monotonic() - started
    assert timed_out.value.timeout, timed_out.value
    assert "within 300 ms (ALIMI_MONGO_TIMEOUT_MS)" in str(timed_out.value), str(timed_out.value)
    assert took < 2, took  # the bound, and at most one of PyMongo's pauses between tries
    if error is WRITE_CONFLICT:
        assert runs > 1  # conflicts were tried again inside the bound
    assert await store.audit.count_documents({}) == 0


async def test_when_a_transaction_conflicts_once__then_it_runs_again_and_commits(
    store: Store, slow_store: Store, mongo_url: str, namespace: str
) -> None:
    await _fail_commits(mongo_url, namespace, {"times": 1}, **WRITE_CONFLICT)
    runs = 0

    async def work(session: AsyncClientSession) -> int:
        nonlocal runs
        runs += 1
        await slow_store.audit.insert_one({"run": runs}, session=session)
        return runs

    assert await asyncio.wait_for(slow_store.in_transaction(work), 10) == 2
    assert [d["run"] async for d in store.audit.find({}, {"_id": 0})] == [2]


async def test_when_a_transaction_runs_out_of_time_in_its_work__then_it_is_aborted_at_once(
    store: Store, slow_store: Store
) -> None:
    # slow_store closes first (ending its sessions): a transaction left open would
    # otherwise hold the drop of the test's database.
    await store.notices.insert_one({"_id": "ntc_1", "n": 0})

    async def work(session: AsyncClientSession) -> None:
        await slow_store.notices.update_one({"_id": "ntc_1"}, {"$inc": {"n": 1}}, session=session)
        await asyncio.sleep(0.4)  # past the 300 ms of the whole transaction
        await slow_store.notices.find_one({"_id": "ntc_1"}, session=session)

    with pytest.raises(PyMongoError, match="ALIMI_MONGO_TIMEOUT_MS"):
        await asyncio.wait_for(slow_store.in_transaction(work), 10)
    # Left open, the transaction would hold the notice from other writers until the
    # server's transaction lifetime limit.
    with pymongo.timeout(2):
        await store.notices.update_one({"_id": "ntc_1"}, {"$inc": {"n": 10}})
    assert (await store.notices.find_one({"_id": "ntc_1"}) or {}).get("n") == 10


async def test_when_a_handlers_database_call_times_out__then_the_consumer_tries_it_again(
    bus: Bus, slow_store: Store, mongo_url: str, namespace: str
) -> None:
    await _hold_finds(mongo_url, namespace, times=1)
    failures_seen: list[Any] = []
    done = asyncio.Event()

    async def handler(event: NoticeApproved, incoming: Any) -> None:
        failures_seen.append((incoming.headers or {}).get(FAILURES_HEADER))
        await slow_store.notices.find_one({"_id": event.notice_id})
        done.set()

    consumer = Consumer(
        bus,
        topology.SEGMENTER_QUEUE,
        NoticeApproved,
        handler,
        prefetch=1,
        poison=PoisonPolicy(limit=3, first_pause_s=0.05),
    )
    await consumer.start()
    event = NoticeApproved(notice_id="ntc_1", incident_id="inc_1", approved_at=datetime.now(UTC))
    await bus.publish(topology.EVENTS, topology.NOTICE_APPROVED, event.to_bytes(), message_id="t")
    await asyncio.wait_for(done.wait(), 20)
    await consumer.stop(grace_s=5)
    assert failures_seen == [None, 1]  # the timeout counted once, then it went through


async def test_when_the_broker_does_not_confirm_in_time__then_the_publish_names_the_bound(
    amqp_url: str, namespace: str
) -> None:
    impatient = Bus(amqp_url, namespace, publish_timeout_s=0.000001)
    await impatient.connect()
    try:
        with pytest.raises(BrokerTimeout, match="ALIMI_AMQP_TIMEOUT_S"):
            await impatient.publish(
                topology.EVENTS, topology.NOTICE_APPROVED, b"{}", message_id="late"
            )
    finally:
        channel = await impatient.channel(prefetch=1)
        await topology.delete(channel, impatient.names)
        await impatient.close()


@pytest.fixture
async def proxy(amqp_url: str) -> AsyncIterator[StallingProxy]:
    """A proxy to the real broker that the test can stall."""
    broker = URL(amqp_url)
    async with stalling_proxy(broker.host or "127.0.0.1", broker.port or 5672) as p:
        yield p


@pytest.fixture
async def proxied_bus(
    bus: Bus, proxy: StallingProxy, amqp_url: str, namespace: str
) -> AsyncIterator[Bus]:
    """A bus in this test's namespace whose connection goes through ``proxy``, with a
    0.5 s publish timeout (``bus`` removes the namespace afterwards)."""
    through = Bus(str(URL(amqp_url).with_port(proxy.port)), namespace, publish_timeout_s=0.5)
    await asyncio.wait_for(through.connect(), 10)
    yield through
    proxy.resume()
    await asyncio.wait_for(through.close(), 10)


async def test_when_the_broker_stalls__then_a_publish_gives_up_within_the_bound_naming_it(
    proxied_bus: Bus, proxy: StallingProxy
) -> None:
    proxy.stall()
    started = time.monotonic()
    with pytest.raises(BrokerTimeout, match=r"within 0\.5 s \(ALIMI_AMQP_TIMEOUT_S\)"):
        await asyncio.wait_for(
            proxied_bus.publish(topology.EVENTS, topology.NOTICE_APPROVED, b"{}", message_id="h"),
            10,
        )
    assert 0.4 < time.monotonic() - started < 1.5
    proxy.resume()  # the same connection goes on once the broker answers again
    await asyncio.wait_for(
        proxied_bus.publish(topology.EVENTS, topology.NOTICE_APPROVED, b"{}", message_id="a"), 10
    )


async def test_when_the_broker_stalls__then_a_consumer_stops_and_the_bus_closes_in_bounded_time(
    proxied_bus: Bus, proxy: StallingProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("alimi.bus.STOP_REPLY_TIMEOUT_S", 0.5)

    async def handler(event: NoticeApproved, incoming: Any) -> None:
        pass

    consumer = Consumer(proxied_bus, topology.SEGMENTER_QUEUE, NoticeApproved, handler, prefetch=1)
    await consumer.start()
    proxy.stall()
    started = time.monotonic()
    await asyncio.wait_for(consumer.stop(grace_s=0.5), 10)  # the cancel is never answered
    assert time.monotonic() - started < 2
    started = time.monotonic()
    await asyncio.wait_for(proxied_bus.close(), 10)
    assert time.monotonic() - started < 5  # aio-pika waits 2 s for the broker's close-ok


async def test_when_a_handlers_publish_times_out__then_the_consumer_tries_it_again(
    bus: Bus, proxied_bus: Bus, proxy: StallingProxy
) -> None:
    failures_seen: list[Any] = []
    errors: list[str] = []
    done = asyncio.Event()

    async def handler(event: NoticeApproved, incoming: Any) -> None:
        failures_seen.append((incoming.headers or {}).get(FAILURES_HEADER))
        if len(failures_seen) == 1:
            proxy.stall()  # the broker stalls while the first try publishes
        try:
            await proxied_bus.publish(
                topology.EVENTS, topology.NOTICE_PARTITION, b"{}", message_id=event.notice_id
            )
        except BrokerTimeout as exc:
            errors.append(str(exc))
            proxy.resume()
            raise
        done.set()

    consumer = Consumer(proxied_bus, topology.SEGMENTER_QUEUE, NoticeApproved, handler, prefetch=1)
    await consumer.start()
    event = NoticeApproved(notice_id="ntc_1", incident_id="inc_1", approved_at=datetime.now(UTC))
    # straight to the broker: the stall must not hold the test's own publish
    await bus.publish(topology.EVENTS, topology.NOTICE_APPROVED, event.to_bytes(), message_id="t")
    await asyncio.wait_for(done.wait(), 20)
    await asyncio.wait_for(consumer.stop(grace_s=5), 10)
    assert len(errors) == 1 and "ALIMI_AMQP_TIMEOUT_S" in errors[0], errors
    assert failures_seen == [None, 0]  # put back without counting: the broker's fault


@pytest.fixture
async def silent_url() -> AsyncIterator[str]:
    """A server that takes connections and never answers."""
    held: list[asyncio.StreamWriter] = []

    async def hold(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    for writer in held:
        writer.close()
    server.close()
    await server.wait_closed()


async def test_when_the_provider_does_not_answer_in_time__then_the_error_names_the_bound(
    http: aiohttp.ClientSession, silent_url: str
) -> None:
    client = SmsClient(
        http,
        base_url=silent_url,
        app_key="sandbox-app-key",
        secret_key="sandbox-secret",
        sender="0215990000",
        timeout_s=0.2,
    )
    [result] = await client.send(
        kind="SMS",
        body="안내",
        title="",
        messages=[SmsMessage("ntc_1:s1", "+821055550001", {})],
    )
    assert (result.outcome, result.error_code, result.in_doubt) == ("retry", "timeout", True)
    assert "within 0.2 s (ALIMI_PROVIDER_TIMEOUT_S)" in (result.error or "")
    with pytest.raises(TimeoutError, match="ALIMI_PROVIDER_TIMEOUT_S"):
        await client.find("ntc_1:s1")


async def test_when_an_operation_grows_with_a_whole_list__then_it_gets_longer_than_the_bound(
    slow_store: Store, mongo_url: str, namespace: str
) -> None:
    await fail_point(
        mongo_url,
        {"times": 1},
        {
            "failCommands": ["aggregate"],
            "blockConnection": True,
            "blockTimeMS": 1000,
            "appName": f"slow-{namespace}",
        },
    )
    assert await count_list_members(slow_store, "lst_big") == 0  # 1 s, past the 300 ms
