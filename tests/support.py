"""Helpers the tests share (importable as ``support``; fixtures live in the conftests)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aio_pika
import aiohttp
from aiohttp.test_utils import TestServer
from pymongo import AsyncMongoClient
from pymongo.errors import PyMongoError

from alimi import attempts, broker, counters, ids, receipt_view, states, topology
from alimi.bus import Bus
from alimi.messages import DeliveryBatch, Recipient, parse
from alimi.settings import BaseSettings
from alimi.store import Store
from alimi_delivery.guard import ProviderGuard
from alimi_delivery.kakao_client import PROVIDER as KAKAO_PROVIDER
from alimi_delivery.kakao_client import KakaoClient
from alimi_delivery.kakao_delivery import KakaoDelivery
from alimi_delivery.retries import RetryPolicy
from alimi_delivery.sms_client import PROVIDER as SMS_PROVIDER
from alimi_delivery.sms_client import SmsClient
from alimi_delivery.sms_delivery import SmsDelivery
from alimi_devstack import Stack


@dataclass
class Deliveries:
    """Builds delivery handlers wired to the sandbox, the store and the bus of a test."""

    store: Store
    bus: Bus
    http: aiohttp.ClientSession
    sandbox: TestServer

    def sms(self, *, sender_no: str = "0215990000", **kw: Any) -> SmsDelivery:
        gateway = SmsClient(
            self.http,
            base_url=str(self.sandbox.make_url("")),
            app_key="sandbox-app-key",
            secret_key="sandbox-secret",
            sender=sender_no,
            timeout_s=kw.pop("timeout_s", 5),
        )
        return SmsDelivery(self.store, self.bus, gateway, **self._common(SMS_PROVIDER, kw))

    def kakao(self, **kw: Any) -> KakaoDelivery:
        gateway = KakaoClient(
            self.http,
            base_url=str(self.sandbox.make_url("")),
            app_key="sandbox-app-key",
            secret_key="sandbox-secret",
            sender="sandbox-sender-key",
            timeout_s=kw.pop("timeout_s", 5),
        )
        return KakaoDelivery(self.store, self.bus, gateway, **self._common(KAKAO_PROVIDER, kw))

    async def seed_notice(self) -> None:
        """Incident ``inc_1`` and its notice ``ntc_1``, and the indexes delivery needs."""
        await self.store.ensure_indexes("receipts", "attempts", "notice_counts")
        await self.store.incidents.insert_one(
            {"_id": "inc_1", "title": "유출", "status_url": "https://a.kr/s/x", "contact": "02"}
        )
        await self.store.notices.insert_one(
            {
                "_id": "ntc_1",
                "incident_id": "inc_1",
                "seq": 1,
                "template": "short_notice",
                "body": "#{name}님 안내: #{status_url}",
                "created_at": datetime.now(UTC),
            }
        )

    async def configure(self, **changes: Any) -> None:
        """Change the sandbox's behaviour (``PUT /_sandbox/config``)."""
        async with self.http.put(self.sandbox.make_url("/_sandbox/config"), json=changes) as resp:
            assert resp.status == 200, await resp.text()

    async def inbox(self, kind: str = "sms") -> list[dict[str, Any]]:
        """What the sandbox's ``kind`` provider (sms, kakao) accepted, in order."""
        async with self.http.get(self.sandbox.make_url(f"/_sandbox/{kind}/messages")) as resp:
            messages: list[dict[str, Any]] = (await resp.json())["messages"]
            return messages

    async def receipts(self) -> dict[str, dict[str, Any]]:
        """Every receipt as people read it, by subject id (see :func:`receipts_of`)."""
        return await receipts_of(self.store)

    @staticmethod
    def _common(provider: str, kw: dict[str, Any]) -> dict[str, Any]:
        guard = ProviderGuard(
            provider,
            requests_per_s=kw.pop("requests_per_s", 0),
            recipients_per_s=kw.pop("recipients_per_s", 0),
            breaker_failures=kw.pop("breaker_failures", 5),
            breaker_cooldown_s=kw.pop("breaker_cooldown_s", 30),
        )
        return {
            "guard": guard,
            "retry": RetryPolicy(kw.pop("delays_s", (5.0, 30.0, 300.0)), 0.0),
            "claim_lease_s": kw.pop("claim_lease_s", 60.0),
            **kw,
        }


#: The longest a test's own database call may take (its drop included): long enough for
#: the heaviest (a drop after 20,000 people), short enough that a call that cannot finish
#: fails its test instead of hanging the run past the test's time limit.
TEST_MONGO_TIMEOUT_MS = 120_000
#: The longest removing a test's queues and exchanges may take: a broker that does not
#: answer fails the test's teardown instead of hanging the run.
TEARDOWN_TIMEOUT_S = 60


async def remove_database(client: AsyncMongoClient[dict[str, Any]], name: str) -> None:
    """Drop a test's database once everything that wrote to it has stopped.

    A process killed inside a transaction (the chaos tests do that) leaves it open on the
    server. SecantusDB ends such a transaction only when another transaction comes along
    after its 60 s lifetime, and a drop waits behind it without end, so the open ones are
    ended first (``killAllSessions``, as drivers' own test suites do between tests). The
    drop is bounded by the client's ``timeoutMS``: one that cannot finish fails the test,
    naming the database."""
    try:
        await client.admin.command({"killAllSessions": []})
        await client.drop_database(name)
    except PyMongoError as exc:
        raise AssertionError(f"could not drop the test database {name}: {exc}") from exc


async def connect_any(amqp_url: str) -> aio_pika.abc.AbstractConnection:
    """A plain connection to the first node of ``amqp_url`` (one URL or a list) that answers."""
    urls = broker.node_urls(amqp_url)
    for url in urls[:-1]:
        try:
            return await aio_pika.connect(url)
        except (OSError, aio_pika.exceptions.AMQPConnectionError):
            continue
    return await aio_pika.connect(urls[-1])


async def delete_namespace(amqp_url: str, namespace: str) -> None:
    """Remove a test's queues and exchanges; bounded, like every teardown step."""
    async with asyncio.timeout(TEARDOWN_TIMEOUT_S):
        connection = await connect_any(amqp_url)
        async with connection:
            channel = await connection.channel()
            await topology.delete(channel, topology.Names(namespace))


def store_as(mongo_url: str, namespace: str, app: str, *, timeout_ms: int) -> Store:
    """A store as a service builds it, with an operation timeout of ``timeout_ms`` and
    the appName ``app``, so a fail point can be aimed at its commands alone."""
    joiner = "&" if "?" in mongo_url else "?"
    settings = BaseSettings(
        mongo_url=f"{mongo_url}{joiner}appName={app}",
        mongo_db=namespace,
        mongo_timeout_ms=timeout_ms,
    )
    return Store.from_settings(settings)


def sms_batch(
    n: int = 3, *, first: int = 0, seq: int = 1, attempt: int = 1, notice_id: str = "ntc_1"
) -> DeliveryBatch:
    """An SMS batch of ``n`` people (``s{first}``, ``s{first+1}``, ...) of ``notice_id``, as
    the segmenter would publish it (a later ``attempt`` as a retry step would)."""
    return DeliveryBatch(
        batch_id=f"{notice_id}:sms:{seq:08d}" + (f":a{attempt}" if attempt > 1 else ""),
        notice_id=notice_id,
        incident_id="inc_1",
        channel="sms",
        attempt=attempt,
        recipients=tuple(
            Recipient(subject_id=f"s{i}", phone=f"+82105555{i:04d}", name=f"고객{i}")
            for i in range(first, first + n)
        ),
    )


async def receipts_of(store: Store, notice_id: str | None = None) -> dict[str, dict[str, Any]]:
    """Every receipt (of ``notice_id``, or of every notice), by subject id, as one flat dict:
    the receipt document, its current attempt's entry, ``status`` (the report's if applied),
    ``channel``, ``provider_message_id``, ``attempts`` (provider attempts) and ``events``
    (:func:`alimi.receipt_view.timeline`)."""
    query = {} if notice_id is None else {"notice_id": notice_id}
    docs = await store.receipts.find(query).sort("_id", 1).to_list()
    found: dict[str, dict[str, Any]] = {}
    views = await receipt_view.join(store, docs)
    for doc, view, events in zip(
        docs, views, await receipt_view.timelines(store, views), strict=True
    ):
        flat: dict[str, Any] = {**doc, **view.entry}
        flat.update(
            status=view.status,
            channel=view.channel,
            provider_message_id=view.message_id,
            attempts=sum(1 for e in events if e.get("kind") in (attempts.SEND, attempts.HALT)),
            events=events,
            report=view.report,
        )
        found[view.subject_id] = flat
    return found


async def seed_receipts(
    store: Store,
    notice_id: str,
    people: list[dict[str, Any]],
    *,
    incident_id: str = "inc_1",
    at: datetime | None = None,
) -> None:
    """Receipts as the services leave them, for tests that start from a notice half-way:
    each person a dict with ``subject_id``, ``status`` and optionally ``channel`` (None:
    decided by the segmenter), ``also_subject_ids`` and attempt-entry fields (``error``,
    ``dead_lettered``, ``reason``, ``fallback_from`` ...). One attempt per channel, the
    delivery report of anyone ``delivered``/``undelivered``, and the counters."""
    now = at or datetime.now(UTC)
    by_channel: dict[str | None, list[dict[str, Any]]] = {}
    for person in people:
        by_channel.setdefault(person.get("channel"), []).append(person)
    delta = counters.Delta()
    for channel, group in by_channel.items():
        attempt_id = ids.attempt_id(f"{notice_id}:{channel or 'segment'}:seed")
        outcomes = []
        for person in group:
            status = person["status"]
            reported = status in (states.DELIVERED, states.UNDELIVERED)
            extra = {
                k: v
                for k, v in person.items()
                if k not in ("subject_id", "status", "channel", "also_subject_ids", "error")
            }
            outcomes.append(
                attempts.Outcome(
                    person["subject_id"],
                    states.SENT if reported else status,
                    message_id=f"req-{notice_id}-{person['subject_id']}"
                    if reported or status == states.SENT
                    else None,
                    error=person.get("error"),
                    dead_lettered=bool(extra.pop("dead_lettered", False)),
                    extra=extra,
                )
            )
            delta.add(channel, status)
            if person.get("fallback_from"):
                delta.handed_over(person["fallback_from"])
        doc = attempts.document(
            attempt_id,
            kind=attempts.SEND if channel else attempts.SEGMENT,
            notice_id=notice_id,
            incident_id=incident_id,
            channel=channel,
            at=now,
            outcomes=outcomes,
        )
        await store.attempts.insert_one(doc)
        await store.receipts.insert_many(
            [
                {
                    "_id": ids.receipt_id(notice_id, p["subject_id"]),
                    "notice_id": notice_id,
                    "incident_id": incident_id,
                    "subject_id": p["subject_id"],
                    "also_subject_ids": list(p.get("also_subject_ids", ())),
                    "channel": channel,
                    "attempt": attempt_id,
                    "claimed_at": now,
                    "created_at": now,
                    **({"fallback_from": p["fallback_from"]} if p.get("fallback_from") else {}),
                }
                for p in group
            ]
        )
        reports = [
            {
                "_id": ids.receipt_id(notice_id, p["subject_id"]),
                "notice_id": notice_id,
                "channel": channel,
                "message_id": f"req-{notice_id}-{p['subject_id']}",
                "status": p["status"],
                "code": "1000",
                "delivered_at": now,
                "applied_at": now,
            }
            for p in group
            if p["status"] in (states.DELIVERED, states.UNDELIVERED)
        ]
        if reports:
            await store.delivery_reports.insert_many(reports)
    await counters.add(store, notice_id, delta, shard="seed")


async def statuses_of(store: Store, notice_id: str | None = None) -> dict[str, str]:
    """subject id -> status, for every receipt (of ``notice_id``)."""
    return {s: r["status"] for s, r in (await receipts_of(store, notice_id)).items()}


async def take_batches(bus: Bus, queue: str) -> list[DeliveryBatch]:
    """Everything waiting in ``queue`` (a logical name), taken off it."""
    channel = await bus.channel(prefetch=100)
    declared = await channel.get_queue(bus.names(queue))
    found = []
    while (message := await declared.get(fail=False)) is not None:
        await message.ack()
        found.append(parse(message.body, DeliveryBatch))
    await channel.close()
    return found


@contextlib.asynccontextmanager
async def operator_session(stack: Stack) -> AsyncIterator[aiohttp.ClientSession]:
    """An HTTP session carrying the stack's local operator key."""
    headers = {"Authorization": f"Bearer {stack.api_key('operator')}"}
    async with aiohttp.ClientSession(headers=headers) as session:
        yield session


async def approve(http: aiohttp.ClientSession, stack: Stack, notice_id: str) -> None:
    """The second person's approval, with the stack's local approver key."""
    async with http.post(
        f"{stack.intake_url}/v1/notices/{notice_id}/approve",
        headers={"Authorization": f"Bearer {stack.api_key('approver')}"},
    ) as resp:
        assert resp.status == 200, await resp.text()


FINISHED_JOB = ("succeeded", "failed")


async def follow_job(
    client: Any, answer: Any, *, headers: dict[str, str] | None = None, reads: int = 3000
) -> dict[str, Any]:
    """The job a ``202`` answer started, read at its ``Location`` until it is finished.

    Waits for the job to say it is done (a positive signal), reading at most
    ``reads`` times; never asserts on how long it took.
    """
    assert answer.status == 202, await answer.text()
    location = answer.headers["Location"]
    job: dict[str, Any] = await answer.json()
    assert job["url"] == location
    for _ in range(reads):
        if job["state"] in FINISHED_JOB:
            return job
        await asyncio.sleep(0.01)
        resp = await client.get(location, headers=headers)
        assert resp.status == 200, await resp.text()
        job = await resp.json()
    raise AssertionError(f"job {job['job_id']} still {job['state']} after {reads} reads")


async def imported(client: Any, data: Any, headers: dict[str, str], **more: Any) -> dict[str, Any]:
    """POST /v1/subjects/import, followed to its end: the import's result."""
    answer = await client.post("/v1/subjects/import", data=data, headers=headers, **more)
    job = await follow_job(client, answer)
    assert job["state"] == "succeeded", job
    result: dict[str, Any] = job["result"]
    return result
