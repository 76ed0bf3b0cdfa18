"""The bus against the real RabbitMQ: topology, confirms, consumer behaviour."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import aio_pika
import pytest

from alimi import broker, topology
from alimi.bus import ERROR_HEADER, Bus, Consumer, RetryLater, Unprocessable
from alimi.messages import NoticeApproved
from rabbitmq_cli import broker_connections, rabbitmqctl


def _event(n: int) -> NoticeApproved:
    return NoticeApproved(notice_id=f"ntc_{n}", incident_id="inc_1", approved_at=datetime.now(UTC))


async def _get_all(
    bus: Bus, queue: str, within_s: float = 5.0
) -> list[aio_pika.abc.AbstractIncomingMessage]:
    channel = await bus.channel(prefetch=100)
    q = await channel.get_queue(bus.names(queue))
    got = []
    deadline = asyncio.get_running_loop().time() + within_s
    while asyncio.get_running_loop().time() < deadline:
        message = await q.get(fail=False)
        if message is None:
            if got:
                break
            await asyncio.sleep(0.05)
            continue
        await message.ack()
        got.append(message)
    await channel.close()
    return got


async def _publish_for_retry(bus: Bus, *, step: int, message_id: str) -> None:
    """A message to an SMS retry queue that expires there at once (0.2 s)."""
    await bus.publish(
        topology.RETRY,
        topology.retry_key("sms", step),
        b'{"x": 1}',
        message_id=message_id,
        expiration_s=0.2,
    )


async def test_when_topology_is_declared_twice__then_nothing_changes(bus: Bus) -> None:
    channel = await bus.channel(prefetch=1)
    await topology.declare(channel, bus.names)
    await topology.declare(channel, bus.names)
    for queue in topology.ALL_QUEUES:
        declared = await channel.declare_queue(bus.names(queue.name), passive=True)
        assert declared.name == f"{bus.names.namespace}.{queue.name}"
    await channel.close()


async def test_when_a_valid_message_is_published__then_the_handler_gets_it_typed(bus: Bus) -> None:
    received: list[NoticeApproved] = []
    done = asyncio.Event()

    async def handler(event: NoticeApproved, _: object) -> None:
        received.append(event)
        done.set()

    consumer = Consumer(bus, topology.SEGMENTER_QUEUE, NoticeApproved, handler, prefetch=4)
    await consumer.start()
    await bus.publish(
        topology.EVENTS, topology.NOTICE_APPROVED, _event(1).to_bytes(), message_id="m1"
    )
    await asyncio.wait_for(done.wait(), 10)
    await consumer.stop(grace_s=5)
    assert received == [_event(1).model_copy(update={"approved_at": received[0].approved_at})]
    assert isinstance(received[0], NoticeApproved)


async def test_when_a_message_is_invalid__then_it_is_dead_lettered_and_the_consumer_goes_on(
    bus: Bus,
) -> None:
    received: list[str] = []
    second = asyncio.Event()

    async def handler(event: NoticeApproved, _: object) -> None:
        received.append(event.notice_id)
        second.set()

    consumer = Consumer(bus, topology.SEGMENTER_QUEUE, NoticeApproved, handler, prefetch=1)
    await consumer.start()
    await bus.publish(topology.EVENTS, topology.NOTICE_APPROVED, b"{not json", message_id="bad-1")
    wrong_version = _event(7).to_bytes().replace(b'"v":1', b'"v":2')
    await bus.publish(topology.EVENTS, topology.NOTICE_APPROVED, wrong_version, message_id="bad-2")
    await bus.publish(
        topology.EVENTS, topology.NOTICE_APPROVED, _event(2).to_bytes(), message_id="ok"
    )
    await asyncio.wait_for(second.wait(), 10)
    await consumer.stop(grace_s=5)

    assert received == ["ntc_2"]
    dead = await _get_all(bus, topology.dead_queue(topology.SEGMENTER_QUEUE))
    assert sorted(m.message_id or "" for m in dead) == ["bad-1", "bad-2"]
    reasons = {m.message_id: str(m.headers[ERROR_HEADER]) for m in dead}
    assert "v" in reasons["bad-2"] and "1" in reasons["bad-2"]
    assert reasons["bad-1"]


async def test_when_the_handler_says_unprocessable__then_the_message_is_dead_lettered(
    bus: Bus,
) -> None:
    async def handler(event: NoticeApproved, _: object) -> None:
        raise Unprocessable("notice does not exist")

    consumer = Consumer(bus, topology.SEGMENTER_QUEUE, NoticeApproved, handler, prefetch=1)
    await consumer.start()
    await bus.publish(
        topology.EVENTS, topology.NOTICE_APPROVED, _event(3).to_bytes(), message_id="u"
    )
    dead = await _get_all(bus, topology.dead_queue(topology.SEGMENTER_QUEUE))
    await consumer.stop(grace_s=5)
    assert [m.message_id for m in dead] == ["u"]
    assert str(dead[0].headers[ERROR_HEADER]) == "notice does not exist"


async def test_when_the_handler_asks_to_retry__then_the_message_comes_back(bus: Bus) -> None:
    attempts = 0
    done = asyncio.Event()

    async def handler(event: NoticeApproved, _: object) -> None:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise RetryLater("provider down")
        done.set()

    consumer = Consumer(bus, topology.SEGMENTER_QUEUE, NoticeApproved, handler, prefetch=1)
    await consumer.start()
    await bus.publish(
        topology.EVENTS, topology.NOTICE_APPROVED, _event(4).to_bytes(), message_id="r"
    )
    await asyncio.wait_for(done.wait(), 10)
    await consumer.stop(grace_s=5)
    assert attempts == 2


async def test_when_stopping__then_in_flight_messages_finish_within_the_grace_period(
    bus: Bus,
) -> None:
    started = asyncio.Event()
    finished: list[str] = []

    async def handler(event: NoticeApproved, _: object) -> None:
        started.set()
        await asyncio.sleep(0.5)
        finished.append(event.notice_id)

    consumer = Consumer(bus, topology.SEGMENTER_QUEUE, NoticeApproved, handler, prefetch=1)
    await consumer.start()
    await bus.publish(
        topology.EVENTS, topology.NOTICE_APPROVED, _event(5).to_bytes(), message_id="s"
    )
    await asyncio.wait_for(started.wait(), 10)
    await consumer.stop(grace_s=5)
    assert finished == ["ntc_5"]
    assert await _get_all(bus, topology.SEGMENTER_QUEUE, within_s=0.5) == []


async def test_when_a_message_expires_in_a_retry_queue__then_it_returns_to_its_channel(
    bus: Bus,
) -> None:
    await _publish_for_retry(bus, step=2, message_id="m-retry")
    channel = await bus.channel(prefetch=1)
    queue = await channel.get_queue(bus.names(topology.delivery_queue("sms")))
    deadline = asyncio.get_running_loop().time() + 10
    message = None
    while message is None and asyncio.get_running_loop().time() < deadline:
        message = await queue.get(fail=False)
        if message is None:
            await asyncio.sleep(0.05)
    assert message is not None and message.message_id == "m-retry"
    await message.ack()
    await channel.close()


async def test_when_quorum_queues_are_asked_for__then_every_queue_is_one_and_retries_still_expire(
    amqp_url: str, namespace: str
) -> None:
    quorum = Bus(amqp_url, namespace, quorum_queues=True)
    await quorum.connect()
    try:
        channel = await quorum.channel(prefetch=1)
        for queue in topology.ALL_QUEUES:
            # Declaring it again as a quorum queue fails unless it is one.
            await channel.declare_queue(
                quorum.names(queue.name),
                durable=True,
                arguments=topology.queue_arguments(queue, quorum.names, quorum=True),
            )
        await channel.close()
        # Per-message expiration in a quorum retry queue sends the message back to its channel.
        await _publish_for_retry(quorum, step=1, message_id="m-quorum")
        [message] = await _get_all(quorum, topology.delivery_queue("sms"), within_s=10)
        assert message.message_id == "m-quorum"
        assert message.headers.get("x-death") or message.headers.get("x-first-death-reason")
    finally:
        cleanup = await quorum.channel(prefetch=1)
        await topology.delete(cleanup, quorum.names)
        await quorum.close()


async def test_when_a_namespace_has_classic_queues__then_a_quorum_bus_refuses_naming_the_queue(
    bus: Bus, amqp_url: str
) -> None:
    quorum = Bus(amqp_url, bus.names.namespace, quorum_queues=True)
    with pytest.raises(topology.TopologyMismatch, match="ALIMI_QUORUM_QUEUES") as refused:
        await quorum.connect()
    assert bus.names(topology.ALL_QUEUES[0].name) in str(refused.value)
    await quorum.close()
    assert bus.is_connected  # the namespace's own queues are untouched


@pytest.mark.skipif(rabbitmqctl() is None, reason="needs rabbitmqctl on this machine")
async def test_when_connecting_fails_after_the_connection_opened__then_no_connection_is_left(
    bus: Bus, amqp_url: str
) -> None:
    namespace = bus.names.namespace
    assert len(broker_connections(namespace)) == 1  # the fixture's own
    quorum = Bus(amqp_url, namespace, quorum_queues=True)

    for _ in range(3):  # as retry_until would, after each failure
        with pytest.raises(topology.TopologyMismatch):
            await quorum.connect()

    # Without close(): a failed connect() leaves nothing reconnecting in the background.
    assert len(broker_connections(namespace)) == 1
    assert quorum.connection is None


async def test_when_the_first_broker_node_does_not_answer__then_the_bus_connects_to_the_next(
    bus: Bus, amqp_url: str, unused_tcp_port: int
) -> None:
    down = f"amqp://guest:guest@127.0.0.1:{unused_tcp_port}/"
    listed = Bus(f"{down},{amqp_url}", bus.names.namespace)

    await listed.connect()
    try:
        assert listed.is_connected
        assert listed.connection is not None
        assert broker.node_name(listed.connection.url) == broker.node_name(amqp_url)
    finally:
        await listed.close()
