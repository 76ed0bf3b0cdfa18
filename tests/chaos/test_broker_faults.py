"""RabbitMQ misbehaving around the services: connections closed by the broker,
and messages no consumer can read.

The broker is the real one; connections are closed the way an operator (or a
broker under memory pressure, or a node restart) closes them:
``rabbitmqctl close_connection``.
"""

from __future__ import annotations

import json

import aio_pika
import aiohttp
import pytest
from harness import Run, StartStack, load_people, queue_depth

from alimi import topology
from alimi.store import Store
from rabbitmq_cli import broker_connections, close_broker_connections, rabbitmqctl

pytestmark = pytest.mark.chaos

# intake (outbox relay), segmenter, delivery for sms, kakao and slack
CONNECTED_PROCESSES = 5

CONNECTIONS_CLOSED = {
    # 40 batches, each call 200-300 ms, two at a time: the notice outlasts
    # the few seconds rabbitmqctl takes to close five connections.
    "ALIMI_BATCH_SIZE": "25",
    "SANDBOX_LATENCY_MS": "200",
    "SANDBOX_LATENCY_JITTER_MS": "100",
    "ALIMI_PREFETCH": "2",
    "ALIMI_PROVIDER_TIMEOUT_S": "2",
    "ALIMI_RETRY_DELAYS_S": "0.5,1,2",
}


@pytest.mark.skipif(rabbitmqctl() is None, reason="needs rabbitmqctl on this machine")
async def test_when_the_broker_closes_every_connection_mid_notice__then_everyone_is_told_once(
    start_stack: StartStack, store: Store, http: aiohttp.ClientSession, namespace: str
) -> None:
    n = 1000
    run = Run(start_stack(CONNECTIONS_CLOSED), store, http)
    before = broker_connections(namespace)
    assert len(before) == CONNECTED_PROCESSES, before
    people = await load_people(store, n)
    notice = await run.post_notice()

    async def under_way() -> bool:
        return await run.sent_by() >= n // 10

    await run.until(under_way, "a tenth of the people told")
    close_broker_connections(before, "chaos test: connection closed by the broker")
    await run.assert_under_way(notice, "the broker closed the connections")

    async def reconnected() -> list[str] | None:
        now = broker_connections(namespace)
        return now if len(now) == CONNECTED_PROCESSES else None

    after = await run.until(reconnected, "every process to connect again", within_s=60)
    assert not set(after) & set(before), "a connection survived close_connection"
    for name in ("intake", "segmenter", "delivery-sms", "delivery-kakao", "delivery-slack"):
        assert "CONNECTION_FORCED - chaos test" in run.log(name), f"{name} saw no forced close"

    await run.wait_completed(notice)
    await run.assert_each_notified_once(notice, people)
    assert all(proc.running for proc in run.stack.processes.values())


async def test_when_unreadable_messages_reach_delivery__then_they_are_dead_lettered_and_it_goes_on(
    start_stack: StartStack, store: Store, http: aiohttp.ClientSession, namespace: str
) -> None:
    run = Run(start_stack(), store, http)
    bodies = {
        "unknown-version": json.dumps(
            {
                "kind": "delivery.batch",
                "v": 99,
                "batch_id": "x:sms:1",
                "notice_id": "ntc_x",
                "incident_id": "inc_x",
                "channel": "sms",
                "recipients": [{"subject_id": "p1", "phone": "+821055000001"}],
            }
        ).encode(),
        "invalid-body": b'{"kind": "delivery.batch", "v": 1, "recipients": "not a list"}',
        "not-json": b"\xff\xfe definitely not JSON",
    }
    connection = await aio_pika.connect(run.stack.amqp_url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange(f"{namespace}.{topology.DELIVERY}")
        for message_id, body in bodies.items():
            await exchange.publish(
                aio_pika.Message(body, message_id=message_id, delivery_mode=2), routing_key="sms"
            )

    dead = topology.dead_queue(topology.delivery_queue("sms"))

    async def all_dead_lettered() -> bool:
        return await queue_depth(run.stack.amqp_url, namespace, dead) == len(bodies)

    await run.until(all_dead_lettered, "the three messages in the dead-letter queue", within_s=30)
    connection = await aio_pika.connect(run.stack.amqp_url)
    async with connection:
        channel = await connection.channel()
        queue = await channel.get_queue(f"{namespace}.{dead}")
        held = {}
        while (message := await queue.get(fail=False)) is not None:
            held[message.message_id] = message.headers or {}
            await message.ack()
    assert set(held) == set(bodies)
    assert all(h["x-alimi-queue"] == "delivery.sms" for h in held.values())
    assert "delivery.batch.v" in str(held["unknown-version"]["x-alimi-error"])
    assert "Invalid JSON" in str(held["not-json"]["x-alimi-error"])

    # One error line per message, saying why.
    logged = {
        e["message_id"]: e for e in run.log_lines("delivery-sms", msg="message dead-lettered")
    }
    assert set(logged) == set(bodies)
    assert all(e["level"] == "error" for e in logged.values())
    assert {k: e["reason"] for k, e in logged.items()} == {
        k: str(h["x-alimi-error"]) for k, h in held.items()
    }
    metrics = await run.metrics("delivery-sms")
    consumed = metrics.value(
        "alimi_bus_messages_consumed_total", queue="delivery.sms", outcome="dead_lettered"
    )
    assert consumed == len(bodies)

    # The consumer is alive and still delivers.
    assert run.stack.processes["delivery-sms"].running
    people = await load_people(store, 200)
    notice = await run.post_notice()
    await run.wait_completed(notice)
    await run.assert_each_notified_once(notice, people)
    assert run.stack.processes["delivery-sms"].running
