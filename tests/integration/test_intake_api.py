"""The intake API in-process, against the real MongoDB-wire server and RabbitMQ."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr

from alimi import topology
from alimi.bus import Bus
from alimi.messages import DeliveryBatch, Recipient
from alimi.store import Store
from alimi_intake.app import init_app
from alimi_intake.settings import IntakeSettings
from support import take_batches

PROBLEM = "application/problem+json"

INCIDENT: dict[str, Any] = {
    "title": "회원 정보 유출",
    "severity": "high",
    "discovered_at": "2026-11-28T09:00:00+09:00",
    "contact": "고객센터 1599-0000",
    "notice": {"body": "이름과 전화번호가 유출되었습니다. #{status_url}"},
    "audience": {"filter": {"tags_any": ["breach"]}},
}


@pytest.fixture
async def client(
    mongo_url: str, amqp_url: str, namespace: str, store: Store, bus: Bus
) -> AsyncIterator[TestClient[Any, Any]]:
    settings = IntakeSettings(
        namespace=namespace,
        amqp_url=SecretStr(amqp_url),
        mongo_url=SecretStr(mongo_url),
        mongo_db=namespace,
        outbox_poll_s=0.2,
    )
    async with TestClient(TestServer(init_app(settings))) as c:
        yield c


async def _collections(store: Store) -> dict[str, int]:
    return {
        name: await store[name].count_documents({})
        for name in ("incidents", "notices", "outbox", "subjects")
    }


async def test_when_subjects_are_posted_as_json__then_they_are_upserted_by_external_id(
    client: TestClient[Any, Any], store: Store
) -> None:
    rows = [
        {"external_id": "c1", "name": "김민준", "phone": "010-1234-5678", "tags": ["breach"]},
        {"external_id": "c2", "name": "Jane", "phone": "+821098765432", "locale": "en"},
    ]
    resp = await client.post("/v1/subjects", json=rows)
    assert resp.status == 200, await resp.text()
    assert await resp.json() == {"received": 2, "inserted": 2, "updated": 0}
    rows[0]["name"] = "김민준2"
    resp = await client.post("/v1/subjects", json=rows[:1])
    assert await resp.json() == {"received": 1, "inserted": 0, "updated": 1}
    doc = await store.subjects.find_one({"_id": "c1"})
    assert doc is not None
    assert doc["name"] == "김민준2"
    assert doc["phone"] == "+821012345678"
    assert doc["phone_masked"] == "+82******5678"
    assert len(doc["phone_hash"]) == 64


async def test_when_subjects_are_posted_as_ndjson__then_each_line_is_a_subject(
    client: TestClient[Any, Any], store: Store
) -> None:
    body = "\n".join(
        json.dumps({"external_id": f"n{i}", "phone": f"+8210000000{i:02d}"}) for i in range(5)
    )
    resp = await client.post(
        "/v1/subjects", data=body, headers={"Content-Type": "application/x-ndjson"}
    )
    assert resp.status == 200, await resp.text()
    assert await store.subjects.count_documents({}) == 5


async def test_when_one_subject_has_a_malformed_phone__then_422_names_it_and_nothing_is_written(
    client: TestClient[Any, Any], store: Store
) -> None:
    rows = [
        {"external_id": "ok1", "phone": "010-1234-5678"},
        {"external_id": "bad1", "phone": "12-34"},
        {"external_id": "bad 2", "phone": "010-1234-5679"},
    ]
    resp = await client.post("/v1/subjects", json=rows)
    assert resp.status == 422
    assert resp.content_type == PROBLEM
    problem = await resp.json()
    fields = [e["field"] for e in problem["errors"]]
    assert fields == ["[1].phone", "[2].external_id"]
    assert await store.subjects.count_documents({}) == 0


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        (b"{not json", 400, None),
        (b"", 400, None),
        (json.dumps({**INCIDENT, "severity": "apocalyptic"}).encode(), 422, "severity"),
        (json.dumps({k: v for k, v in INCIDENT.items() if k != "title"}).encode(), 422, "title"),
        (
            json.dumps({**INCIDENT, "discovered_at": "2026-11-28T09:00:00"}).encode(),
            422,
            "discovered_at",
        ),
        (
            json.dumps({**INCIDENT, "notice": {"body": "#{ssn} leaked"}}).encode(),
            422,
            "notice.body",
        ),
        (json.dumps({**INCIDENT, "audience": {}}).encode(), 422, "audience"),
        # The first-notice template names the contact desk: an incident without one is refused.
        (json.dumps({**INCIDENT, "contact": ""}).encode(), 422, "contact"),
        (
            json.dumps({**INCIDENT, "notice": {"body": "x", "template": "free_text"}}).encode(),
            422,
            "notice.template",
        ),
        (
            json.dumps(
                {**INCIDENT, "notice": {"body": "x", "translations": {"ja": {"body": "y"}}}}
            ).encode(),
            422,
            "notice.translations.ja",
        ),
        (
            json.dumps(
                {**INCIDENT, "audience": {"filter": {"attributes": {"$where": "1"}}}}
            ).encode(),
            422,
            "audience.filter.attributes.$where.[key]",
        ),
    ],
)
async def test_when_an_incident_is_invalid__then_a_problem_names_it_and_nothing_is_written(
    client: TestClient[Any, Any], store: Store, body: bytes, status: int, field: str | None
) -> None:
    resp = await client.post(
        "/v1/incidents", data=body, headers={"Content-Type": "application/json"}
    )
    assert resp.status == status, await resp.text()
    assert resp.content_type == PROBLEM
    problem = await resp.json()
    assert problem["status"] == status
    assert problem["title"]
    if field is not None:
        assert field in [e["field"] for e in problem["errors"]], problem
    assert await _collections(store) == {"incidents": 0, "notices": 0, "outbox": 0, "subjects": 0}


async def test_when_an_incident_is_created__then_its_notice_is_announced_on_the_bus(
    client: TestClient[Any, Any], store: Store, bus: Bus
) -> None:
    resp = await client.post("/v1/incidents", json=INCIDENT)
    assert resp.status == 201, await resp.text()
    created = await resp.json()
    assert resp.headers["Location"] == f"/v1/incidents/{created['incident_id']}"

    channel = await bus.channel(prefetch=1)
    queue = await channel.get_queue(bus.names(topology.SEGMENTER_QUEUE))
    message = None
    for _ in range(100):
        message = await queue.get(fail=False)
        if message is not None:
            break
        await asyncio.sleep(0.05)
    assert message is not None, "no notice.approved event published"
    await message.ack()
    await channel.close()
    event = json.loads(message.body)
    assert event["kind"] == "notice.approved"
    assert event["notice_id"] == created["notice_id"]
    outbox = await store.outbox.find_one({})
    assert outbox is not None and outbox["published"] is True

    resp = await client.get(f"/v1/incidents/{created['incident_id']}")
    view = await resp.json()
    assert view["title"] == INCIDENT["title"]
    assert [n["state"] for n in view["notices"]] == ["approved"]


async def test_when_the_incident_does_not_exist__then_404_problem(
    client: TestClient[Any, Any],
) -> None:
    resp = await client.get("/v1/incidents/inc_nope")
    assert resp.status == 404
    assert resp.content_type == PROBLEM


async def test_when_a_notices_dead_letters_are_replayed__then_only_its_batches_go_back(
    client: TestClient[Any, Any], store: Store, bus: Bus
) -> None:
    def batch(notice_id: str, subject: str) -> DeliveryBatch:
        return DeliveryBatch(
            batch_id=f"{notice_id}:sms:00000001:a4",
            notice_id=notice_id,
            incident_id="inc_1",
            channel="sms",
            attempt=4,
            recipients=(Recipient(subject_id=subject, phone="+821055550000"),),
        )

    await store.notices.insert_one({"_id": "ntc_x", "incident_id": "inc_1", "state": "completed"})
    await store.receipts.insert_one(
        {"_id": "ntc_x:s1", "notice_id": "ntc_x", "status": "failed", "dead_lettered": True}
    )
    dead = topology.dead_queue(topology.delivery_queue("sms"))
    for b in (batch("ntc_x", "s1"), batch("ntc_other", "s2")):
        await bus.publish(
            topology.DEAD, topology.delivery_queue("sms"), b.to_bytes(), message_id=b.batch_id
        )
    await bus.publish(topology.DEAD, topology.delivery_queue("sms"), b"not json", message_id="bad")

    resp = await client.post("/v1/notices/ntc_x/dead-letters/replay")
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["recipients_by_channel"] == {"sms": 1}

    [replayed] = await take_batches(bus, topology.delivery_queue("sms"))
    assert (replayed.batch_id, replayed.attempt) == ("ntc_x:sms:00000001:replay", 1)
    receipt = await store.receipts.find_one({"_id": "ntc_x:s1"})
    assert receipt is not None and receipt["status"] == "retrying"
    notice = await store.notices.find_one({"_id": "ntc_x"})
    assert notice is not None and notice["state"] == "sending"
    channel = await bus.channel(prefetch=10)
    queue = await channel.get_queue(bus.names(dead))
    left = []
    while (message := await queue.get(fail=False)) is not None:
        left.append(message.message_id)
        await message.ack()
    await channel.close()
    assert sorted(left) == ["bad", "ntc_other:sms:00000001:a4"]

    missing = await client.post("/v1/notices/ntc_nope/dead-letters/replay")
    assert missing.status == 404 and missing.content_type == PROBLEM
