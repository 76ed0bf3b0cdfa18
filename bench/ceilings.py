"""What this machine can do without Alimi: the ceilings and the naive baseline.

Each runs for a fixed time and returns rates:

* :func:`broker` — RabbitMQ with one message per recipient: persistent
  messages published through :class:`alimi.bus.Bus` (publisher confirms, a
  window of confirms in flight), consumed at the same time with manual acks,
  one ack per message. The rate is messages acked per second.
* :func:`store` — the cheapest honest way to keep one receipt per person:
  ``insert_many`` of one final receipt document each (channel, status, masked
  destination, provider message id, one event), 100 per call, a few calls in
  flight, into a collection with the receipts' indexes. People per second,
  and the database's CPU per person: what ``vs_store`` sets Alimi against
  is this minimum, not Alimi's own write pattern.
* :func:`concurrent` — what a competent engineer would script instead of
  Alimi: 64 provider calls in flight, one person per call (the sandbox SMS
  gateway, same latency as the pipeline's) and one ``insert_one`` of a
  receipt each.
* :func:`naive` — the same one person at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import UTC, datetime
from typing import Any

import aio_pika
import aiohttp
from aio_pika.abc import AbstractIncomingMessage
from sampling import cpu_seconds

from alimi import topology
from alimi.bus import Bus
from alimi.messages import DeliveryBatch, Recipient
from alimi.store import RECEIPTS, Store

SANDBOX_APP_KEY = "sandbox-app-key"
SANDBOX_SECRET = "sandbox-secret"
SANDBOX_SENDER = "0215990000"


def one_recipient_body(i: int) -> bytes:
    """A delivery message holding one person: what "one message per recipient" carries."""
    return DeliveryBatch(
        batch_id=f"ceiling:sms:{i}",
        notice_id="ntc_ceiling",
        incident_id="inc_ceiling",
        channel="sms",
        recipients=(
            Recipient(
                subject_id=f"c{i:08d}",
                phone=f"+8210{3000 + i // 10_000 % 1000}{i % 10_000:04d}",
                name=f"고객{i}",
                locale="ko",
                fallback=(),
            ),
        ),
    ).to_bytes()


async def broker(
    amqp_url: str, namespace: str, *, seconds: float, window: int = 64, prefetch: int = 256
) -> dict[str, Any]:
    """Publish with confirms and consume with acks at once for ``seconds``; rates."""
    bus = Bus(amqp_url, namespace)
    await bus.connect()
    try:
        channel = await bus.channel(prefetch)
        queue = await channel.get_queue(bus.names(topology.delivery_queue("sms")))
        acked = 0
        last_ack = time.perf_counter()
        drained = asyncio.Event()
        published: int | None = None

        async def on_message(message: AbstractIncomingMessage) -> None:
            nonlocal acked, last_ack
            await message.ack()
            acked += 1
            last_ack = time.perf_counter()
            if published is not None and acked >= published:
                drained.set()

        tag = await queue.consume(on_message)
        slots = asyncio.Semaphore(window)
        in_flight: set[asyncio.Task[None]] = set()

        async def publish(i: int) -> None:
            try:
                await bus.publish(
                    topology.DELIVERY, "sms", one_recipient_body(i), message_id=f"ceiling-{i}"
                )
            finally:
                slots.release()

        started = time.perf_counter()
        deadline = started + seconds
        count = 0
        while time.perf_counter() < deadline:
            await slots.acquire()
            task = asyncio.create_task(publish(count))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
            count += 1
        await asyncio.gather(*in_flight)
        publish_s = time.perf_counter() - started
        published = count
        if acked >= published:
            drained.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(drained.wait(), timeout=120)
        consume_s = last_ack - started
        await queue.cancel(tag)
        await channel.close()
    finally:
        await bus.close()
        await delete_namespace(amqp_url, namespace)
    return {
        "what": "persistent messages, publisher confirms (alimi.bus.Bus, "
        f"{window} in flight), consumed with one ack each (prefetch {prefetch}); "
        "one message per recipient",
        "seconds": round(consume_s, 2),
        "messages": count,
        "acked": acked,
        "publish_per_s": round(count / publish_s, 1),
        "msgs_per_s": round(acked / consume_s, 1) if consume_s > 0 else None,
    }


async def delete_namespace(amqp_url: str, namespace: str) -> None:
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        await topology.delete(await connection.channel(), topology.Names(namespace))


def final_receipt(notice_id: str, subject_id: str, now: datetime) -> dict[str, Any]:
    """One person's receipt, written once with the provider's answer."""
    return {
        "_id": f"{notice_id}:{subject_id}",
        "notice_id": notice_id,
        "subject_id": subject_id,
        "channel": "sms",
        "status": "sent",
        "destination": "+82******1234",
        "provider_message_id": f"m-{subject_id}",
        "sent_at": now,
        "events": [{"at": now, "status": "sent", "channel": "sms"}],
    }


async def store(
    mongo_url: str,
    database: str,
    *,
    seconds: float,
    chunk: int = 100,
    writers: int = 4,
    server_pid: int | None = None,
) -> dict[str, Any]:
    """``insert_many`` of final receipts, chunk after chunk, for ``seconds`` in a scratch
    database; people per second and (given the server's pid) its CPU per person."""
    db = Store(mongo_url, database)
    people = 0
    try:
        await db.ensure_indexes(RECEIPTS)
        deadline = time.perf_counter() + seconds

        async def writer(w: int) -> None:
            nonlocal people
            i = 0
            while time.perf_counter() < deadline:
                now = datetime.now(UTC)
                docs = [final_receipt("ntc_ceiling", f"w{w}-{i + j}", now) for j in range(chunk)]
                await db.receipts.insert_many(docs, ordered=False)
                i += chunk
                people += chunk

        cpu_before = cpu_seconds(server_pid) if server_pid else None
        started = time.perf_counter()
        await asyncio.gather(*(writer(w) for w in range(writers)))
        elapsed = time.perf_counter() - started
        cpu_used = cpu_seconds(server_pid) - cpu_before if server_pid and cpu_before else None
    finally:
        await db.client.drop_database(database)
        await db.close()
    return {
        "what": f"insert_many of one final receipt per person, {chunk} per call, {writers} "
        "calls in flight, receipts' indexes in place",
        "seconds": round(elapsed, 2),
        "people": people,
        "people_per_s": round(people / elapsed, 1),
        "server_cpu_ms_per_person": round(1000 * cpu_used / people, 3)
        if cpu_used is not None and people
        else None,
    }


async def concurrent(
    sandbox_url: str, mongo_url: str, database: str, *, seconds: float, in_flight: int = 64
) -> dict[str, Any]:
    """``in_flight`` people at a time: each one provider call and one receipt insert."""
    db = Store(mongo_url, database)
    url = f"{sandbox_url}/sms/v3.0/appKeys/{SANDBOX_APP_KEY}/sender/sms"
    done = failed = 0
    next_i = 0
    try:
        connector = aiohttp.TCPConnector(limit=in_flight)
        async with aiohttp.ClientSession(connector=connector) as http:
            started = time.perf_counter()
            deadline = started + seconds

            async def worker() -> None:
                nonlocal done, failed, next_i
                while time.perf_counter() < deadline:
                    i = next_i
                    next_i += 1
                    ok = await _one_person(http, db, url, "concurrent", i)
                    if ok:
                        done += 1
                    else:
                        failed += 1

            await asyncio.gather(*(worker() for _ in range(in_flight)))
            elapsed = time.perf_counter() - started
    finally:
        await db.client.drop_database(database)
        await db.close()
    return {
        "what": f"{in_flight} people in flight: one sandbox SMS call (aiohttp) and one "
        "insert_one each",
        "seconds": round(elapsed, 2),
        "recipients": done,
        "failed": failed,
        "recipients_per_s": round(done / elapsed, 1),
    }


async def _one_person(http: aiohttp.ClientSession, db: Store, url: str, what: str, i: int) -> bool:
    """One provider call and one receipt insert for person ``i``; did the provider take it?"""
    key = f"{what}:{i}"
    number = f"010{4000 + i // 10_000 % 1000}{i % 10_000:04d}"
    async with http.post(
        url,
        json={
            "body": "개인정보 유출 사고를 알려드립니다",
            "sendNo": SANDBOX_SENDER,
            "recipientList": [{"recipientNo": number, "recipientGroupingKey": key}],
        },
        headers={"X-Secret-Key": SANDBOX_SECRET},
    ) as resp:
        answer = await resp.json(content_type=None)
    ok = bool((answer.get("header") or {}).get("isSuccessful"))
    now = datetime.now(UTC)
    await db.db[f"{what}_receipts"].insert_one(
        {
            "_id": key,
            "status": "sent" if ok else "failed",
            "channel": "sms",
            "destination": "+82******" + number[-4:],
            "sent_at": now,
            "events": [{"at": now, "status": "sent" if ok else "failed"}],
        }
    )
    return ok


async def naive(
    sandbox_url: str, mongo_url: str, database: str, *, seconds: float
) -> dict[str, Any]:
    """One person at a time: one provider call, one receipt insert; people per second."""
    db = Store(mongo_url, database)
    url = f"{sandbox_url}/sms/v3.0/appKeys/{SANDBOX_APP_KEY}/sender/sms"
    done = failed = 0
    try:
        async with aiohttp.ClientSession() as http:
            started = time.perf_counter()
            deadline = started + seconds
            while time.perf_counter() < deadline:
                if await _one_person(http, db, url, "naive", done + failed):
                    done += 1
                else:
                    failed += 1
            elapsed = time.perf_counter() - started
    finally:
        await db.client.drop_database(database)
        await db.close()
    return {
        "what": "one recipient at a time: one sandbox SMS call (aiohttp), one insert_one",
        "seconds": round(elapsed, 2),
        "recipients": done,
        "failed": failed,
        "recipients_per_s": round(done / elapsed, 1),
    }
