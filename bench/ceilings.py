"""What this machine can do without Alimi: the ceilings and the naive baseline.

Each runs for a fixed time and returns rates:

* :func:`broker` — RabbitMQ with one message per recipient: persistent
  messages published through :class:`alimi.bus.Bus` (publisher confirms, a
  window of confirms in flight), consumed at the same time with manual acks,
  one ack per message. The rate is messages acked per second.
* :func:`store` — MongoDB with bulk receipt writes of the pipeline's shapes:
  for each chunk of one delivery batch, the claimed receipts inserted
  (``insert_many``), then updated to ``sent`` and then to ``delivered``
  (unordered ``bulk_write`` of ``UpdateOne``), a few chunks in flight. The
  rate is people per second (three writes each): the most a notice could go
  at if the store did nothing else.
* :func:`naive` — what a simple script would do: one person at a time, one
  provider call (the sandbox SMS gateway, same latency as the pipeline's)
  and one ``insert_one`` of a receipt.
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
from pymongo import UpdateOne

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


def _claimed(notice_id: str, subject_id: str, now: datetime) -> dict[str, Any]:
    """The receipt delivery's claim inserts for one person (same fields and event)."""
    return {
        "_id": f"{notice_id}:{subject_id}",
        "status": "claimed",
        "channel": "sms",
        "provider": "sandbox-sms",
        "claimed_at": now,
        "batch_id": f"{notice_id}:sms:1",
        "updated_at": now,
        "notice_id": notice_id,
        "incident_id": "inc_ceiling",
        "subject_id": subject_id,
        "also_subject_ids": [],
        "destination": "+82******1234",
        "attempts": 0,
        "created_at": now,
        "events": [{"at": now, "status": "claimed", "channel": "sms", "detail": "ceiling"}],
    }


def _sent(receipt_id: str, now: datetime) -> UpdateOne:
    """Delivery's record of an accepted message (same filter and update)."""
    return UpdateOne(
        {"_id": receipt_id, "status": "claimed"},
        {
            "$set": {
                "status": "sent",
                "provider_message_id": f"m-{receipt_id}",
                "sent_at": now,
                "updated_at": now,
            },
            "$inc": {"attempts": 1},
            "$push": {"events": {"at": now, "status": "sent", "channel": "sms", "detail": "m"}},
        },
    )


def _delivered(receipt_id: str, now: datetime) -> UpdateOne:
    """The receipts service's application of a delivery report (same filter and update)."""
    return UpdateOne(
        {"_id": receipt_id, "status": "sent", "provider_message_id": f"m-{receipt_id}"},
        {
            "$set": {
                "status": "delivered",
                "report_code": "1000",
                "report_message": "Delivered",
                "reported_at": now,
                "delivered_at": now,
                "report_id": "rpt_ceiling",
                "updated_at": now,
            },
            "$push": {"events": {"at": now, "status": "delivered", "detail": "1000 Delivered"}},
        },
    )


async def store(
    mongo_url: str, database: str, *, seconds: float, chunk: int = 100, writers: int = 4
) -> dict[str, Any]:
    """A receipt's three writes for chunk after chunk of people, for ``seconds`` in a
    scratch database; people (and writes) per second."""
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
                docs = [_claimed("ntc_ceiling", f"w{w}-{i + j}", now) for j in range(chunk)]
                await db.receipts.insert_many(docs, ordered=False)
                rids = [d["_id"] for d in docs]
                await db.receipts.bulk_write([_sent(r, now) for r in rids], ordered=False)
                await db.receipts.bulk_write([_delivered(r, now) for r in rids], ordered=False)
                i += chunk
                people += chunk

        started = time.perf_counter()
        await asyncio.gather(*(writer(w) for w in range(writers)))
        elapsed = time.perf_counter() - started
    finally:
        await db.client.drop_database(database)
        await db.close()
    return {
        "what": f"per person: insert claimed, update to sent, update to delivered; {chunk} "
        f"people per bulk call, {writers} writers, receipts' indexes in place",
        "seconds": round(elapsed, 2),
        "people": people,
        "writes": 3 * people,
        "people_per_s": round(people / elapsed, 1),
        "writes_per_s": round(3 * people / elapsed, 1),
    }


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
                key = f"naive:{done + failed}"
                number = f"010{4000 + done // 10_000 % 1000}{done % 10_000:04d}"
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
                await db.db["naive_receipts"].insert_one(
                    {
                        "_id": key,
                        "status": "sent" if ok else "failed",
                        "channel": "sms",
                        "destination": "+82******" + number[-4:],
                        "sent_at": now,
                        "events": [{"at": now, "status": "sent" if ok else "failed"}],
                    }
                )
                if ok:
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
