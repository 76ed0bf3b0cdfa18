"""Messages that keep failing, against the real RabbitMQ: counted in the message, set
aside in the dead-letter queue with the reason, replayable; and a closed broker
connection that does not cut a handler in half."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import aio_pika
import pytest
from prometheus_client import REGISTRY
from pymongo.errors import ServerSelectionTimeoutError

from alimi import poison, topology
from alimi.bus import ERROR_HEADER, Bus, Consumer
from alimi.messages import DeliveryBatch, NoticeApproved, Recipient
from alimi.poison import FAILURES_HEADER, REASON_HEADER, PoisonPolicy
from alimi.store import Store
from alimi_intake import dead_letters
from rabbitmq_cli import broker_connections, close_broker_connections, rabbitmqctl

QUICK = PoisonPolicy(limit=3, first_pause_s=0.05, longest_pause_s=0.1)


def _event(n: int) -> NoticeApproved:
    return NoticeApproved(notice_id=f"ntc_{n}", incident_id="inc_1", approved_at=datetime.now(UTC))


async def _approve(bus: Bus, n: int, message_id: str) -> None:
    await bus.publish(
        topology.EVENTS, topology.NOTICE_APPROVED, _event(n).to_bytes(), message_id=message_id
    )


def _poisoned(queue: str) -> float:
    return REGISTRY.get_sample_value("alimi_poison_messages_total", {"queue": queue}) or 0.0


async def _take(
    bus: Bus, queue: str, within_s: float = 10.0
) -> aio_pika.abc.AbstractIncomingMessage:
    channel = await bus.channel(prefetch=1)
    q = await channel.get_queue(bus.names(queue))
    deadline = asyncio.get_running_loop().time() + within_s
    try:
        while asyncio.get_running_loop().time() < deadline:
            message = await q.get(fail=False)
            if message is not None:
                await message.ack()
                return message
            await asyncio.sleep(0.05)
    finally:
        await channel.close()
    raise AssertionError(f"nothing arrived in {queue}")


async def test_when_a_handler_always_fails__then_the_message_ends_in_its_dead_letter_queue(
    bus: Bus,
) -> None:
    seen: list[Any] = []

    async def handler(event: NoticeApproved, incoming: Any) -> None:
        seen.append((incoming.headers or {}).get(FAILURES_HEADER))
        raise RuntimeError("this one never works")

    before = _poisoned(topology.SEGMENTER_QUEUE)
    consumer = Consumer(
        bus, topology.SEGMENTER_QUEUE, NoticeApproved, handler, prefetch=1, poison=QUICK
    )
    await consumer.start()
    await _approve(bus, 1, "p")
    dead = await _take(bus, topology.dead_queue(topology.SEGMENTER_QUEUE))
    await consumer.stop(grace_s=5)

    assert seen == [None, 1, 2]  # the count travels with the message
    assert dead.message_id == "p"
    assert dead.headers[REASON_HEADER] == "failed 3 times"
    assert dead.headers[ERROR_HEADER] == "RuntimeError: this one never works"
    assert _poisoned(topology.SEGMENTER_QUEUE) == before + 1


async def test_when_a_handler_fails_less_often_than_the_limit__then_the_message_is_handled(
    bus: Bus,
) -> None:
    calls = 0
    done = asyncio.Event()

    async def handler(event: NoticeApproved, _: object) -> None:
        nonlocal calls
        calls += 1
        if calls < QUICK.limit:
            raise RuntimeError("not yet")
        done.set()

    consumer = Consumer(
        bus, topology.SEGMENTER_QUEUE, NoticeApproved, handler, prefetch=1, poison=QUICK
    )
    await consumer.start()
    await _approve(bus, 2, "q")
    await asyncio.wait_for(done.wait(), 10)
    await consumer.stop(grace_s=5)
    assert calls == QUICK.limit


async def test_when_the_database_cannot_be_reached__then_the_failures_are_not_the_messages(
    bus: Bus,
) -> None:
    calls = 0
    done = asyncio.Event()

    async def handler(event: NoticeApproved, _: object) -> None:
        nonlocal calls
        calls += 1
        if calls <= QUICK.limit + 1:
            raise ServerSelectionTimeoutError("no server to select")
        done.set()

    consumer = Consumer(
        bus, topology.SEGMENTER_QUEUE, NoticeApproved, handler, prefetch=1, poison=QUICK
    )
    await consumer.start()
    await _approve(bus, 3, "o")
    await asyncio.wait_for(done.wait(), 30)
    await consumer.stop(grace_s=5)
    assert calls == QUICK.limit + 2


async def test_when_a_poisoned_batch_is_replayed__then_it_returns_to_its_channel_uncounted(
    bus: Bus, store: Store
) -> None:
    batch = DeliveryBatch(
        batch_id="ntc_9:sms:00000001",
        notice_id="ntc_9",
        incident_id="inc_9",
        channel="sms",
        recipients=(Recipient(subject_id="s1", phone="+821055550001"),),
    )

    async def handler(_: DeliveryBatch, __: object) -> None:
        raise RuntimeError("broken renderer")

    queue = topology.delivery_queue("sms")
    consumer = Consumer(bus, queue, DeliveryBatch, handler, prefetch=1, poison=QUICK)
    await consumer.start()
    await bus.publish(topology.DELIVERY, "sms", batch.to_bytes(), message_id=batch.batch_id)
    dead_queue = topology.dead_queue(queue)
    channel = await bus.channel(prefetch=1)
    dead = await channel.get_queue(bus.names(dead_queue))
    for _ in range(200):
        if (await dead.declare()).message_count:
            break
        await asyncio.sleep(0.05)
    await channel.close()
    await consumer.stop(grace_s=5)

    replayed = await dead_letters.replay(store, bus, "ntc_9")
    assert (replayed.batches, replayed.recipients) == (1, 1)
    again = await _take(bus, queue)
    assert again.message_id == "ntc_9:sms:00000001:replay"
    assert FAILURES_HEADER not in (again.headers or {})


@pytest.mark.skipif(rabbitmqctl() is None, reason="needs rabbitmqctl on this machine")
async def test_when_the_broker_closes_the_connection_mid_handler__then_the_handler_finishes(
    bus: Bus, namespace: str
) -> None:
    events: list[str] = []
    started = asyncio.Event()
    second = asyncio.Event()

    async def handler(event: NoticeApproved, incoming: Any) -> None:
        if events:  # the redelivery: the first handling is over by now
            events.append(f"again after {events[-1]}")
            second.set()
            return
        events.append("started")
        started.set()
        await asyncio.sleep(3)  # a write under way when the connection goes
        events.append("finished")

    consumer = Consumer(bus, topology.SEGMENTER_QUEUE, NoticeApproved, handler, prefetch=1)
    await consumer.start()
    await _approve(bus, 4, "c")
    await asyncio.wait_for(started.wait(), 10)
    close_broker_connections(broker_connections(namespace), "test: connection closed")
    await asyncio.wait_for(second.wait(), 30)
    await consumer.stop(grace_s=5)
    assert events == ["started", "finished", "again after finished"]


def test_when_queues_are_quorum__then_the_brokers_limit_is_above_any_consumers() -> None:
    names = topology.Names("x")
    for queue in topology.WORK_QUEUES:
        args = topology.queue_arguments(queue, names, quorum=True)
        assert args["x-delivery-limit"] == poison.BROKER_DELIVERY_LIMIT
        assert "x-delivery-limit" not in topology.queue_arguments(queue, names, quorum=False)
    for queue in (*topology.RETRY_QUEUES, *topology.HELD_QUEUES, *topology.DEAD_QUEUES):
        assert "x-delivery-limit" not in topology.queue_arguments(queue, names, quorum=True)


async def test_when_a_quorum_namespace_predates_the_delivery_limit__then_the_bus_says_so(
    amqp_url: str, namespace: str
) -> None:
    names = topology.Names(namespace)
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        old = topology.WORK_QUEUES[0]
        arguments = topology.queue_arguments(old, names, quorum=True)
        del arguments["x-delivery-limit"]  # as declared before the limit existed
        await channel.declare_queue(names(old.name), durable=True, arguments=arguments)
    quorum = Bus(amqp_url, namespace, quorum_queues=True)
    try:
        with pytest.raises(topology.TopologyMismatch, match="x-delivery-limit"):
            await quorum.connect()
    finally:
        await quorum.close()
        connection = await aio_pika.connect(amqp_url)
        async with connection:
            await topology.delete(await connection.channel(), names)


def test_when_a_message_keeps_failing__then_its_pause_grows_after_the_first_few() -> None:
    pauses = [PoisonPolicy().pause(n) for n in range(1, 10)]
    assert pauses == [1, 1, 1, 2, 4, 8, 16, 30, 30]
