"""The receipts webhook in-process, against the real MongoDB-wire server."""

from __future__ import annotations

import asyncio
import io
import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import REGISTRY
from pydantic import SecretStr

from alimi.store import Store
from alimi_receipts import signature
from alimi_receipts.app import init_app
from alimi_receipts.context import CONTEXT
from alimi_receipts.settings import ReceiptsSettings

PROBLEM = "application/problem+json"
SECRET = "integration-report-secret"
SENT_AT = datetime(2026, 1, 1, 0, 0, tzinfo=UTC)


def settings_for(mongo_url: str, namespace: str, **changes: Any) -> ReceiptsSettings:
    return ReceiptsSettings(
        namespace=namespace,
        mongo_url=SecretStr(mongo_url),
        mongo_db=namespace,
        report_secret=SecretStr(SECRET),
        **changes,
    )


@pytest.fixture
async def client(
    mongo_url: str, namespace: str, store: Store
) -> AsyncIterator[TestClient[Any, Any]]:
    async with TestClient(TestServer(init_app(settings_for(mongo_url, namespace)))) as c:
        yield c


def report(
    key: str | None, message_id: str, status: str = "DELIVERED", **changes: Any
) -> dict[str, Any]:
    return {
        "messageId": message_id,
        "recipientGroupingKey": key,
        "recipientNo": "01012345678",
        "resultCode": "1000" if status == "DELIVERED" else "3015",
        "status": status,
        "resultMessage": "success" if status == "DELIVERED" else "unreachable",
        "deliveredAt": "2026-01-01T00:00:07Z",
    } | changes


async def post(
    client: TestClient[Any, Any],
    body: Any,
    *,
    channel: str = "sms",
    secret: str = SECRET,
    signed_at: float | None = None,
) -> Any:
    raw = json.dumps(body).encode()
    headers = signature.headers(secret.encode(), raw, now=signed_at)
    return await client.post(
        f"/v1/reports/{channel}",
        data=raw,
        headers={**headers, "Content-Type": "application/json"},
    )


async def add_receipt(store: Store, key: str, status: str, message_id: str | None) -> None:
    doc: dict[str, Any] = {
        "_id": key,
        "notice_id": key.split(":")[0],
        "subject_id": key.split(":")[1],
        "channel": "sms",
        "status": status,
        "destination": "+82******5678",
        "events": [{"at": SENT_AT, "status": status, "detail": message_id or ""}],
        "updated_at": SENT_AT,
    }
    if message_id:
        doc["provider_message_id"] = message_id
    await store.receipts.insert_one(doc)


async def receipt(store: Store, key: str) -> dict[str, Any]:
    found = await store.receipts.find_one({"_id": key})
    assert found is not None
    return found


def counted(outcome: str, channel: str = "sms") -> float:
    value = REGISTRY.get_sample_value(
        "alimi_reports_total", {"channel": channel, "outcome": outcome}
    )
    return value or 0.0


def changed(status: str, channel: str = "sms") -> float:
    value = REGISTRY.get_sample_value(
        "alimi_receipts_status_changes_total", {"channel": channel, "status": status}
    )
    return value or 0.0


async def test_when_a_delivered_report_arrives_for_a_sent_receipt__then_it_is_delivered(
    client: TestClient[Any, Any], store: Store
) -> None:
    await add_receipt(store, "ntc_a:c1", "sent", "req1-1")
    accepted, delivered = counted("accepted"), changed("delivered")

    resp = await post(client, {"reports": [report("ntc_a:c1", "req1-1")]})

    assert resp.status == 200, await resp.text()
    assert await resp.json() == {"accepted": 1, "unknown": 0, "duplicates": 0}
    doc = await receipt(store, "ntc_a:c1")
    assert doc["status"] == "delivered"
    assert doc["delivered_at"] == datetime(2026, 1, 1, 0, 0, 7, tzinfo=UTC)
    assert (doc["report_code"], doc["report_message"]) == ("1000", "success")
    assert doc["updated_at"] > SENT_AT
    assert [e["status"] for e in doc["events"]] == ["sent", "delivered"]
    assert "01012345678" not in json.dumps(doc, default=str)
    assert counted("accepted") - accepted == 1
    assert changed("delivered") - delivered == 1


async def test_when_the_same_report_arrives_again__then_nothing_changes_and_it_is_a_duplicate(
    client: TestClient[Any, Any], store: Store
) -> None:
    await add_receipt(store, "ntc_a:c1", "sent", "req1-1")
    body = {"reports": [report("ntc_a:c1", "req1-1")]}
    assert (await post(client, body)).status == 200
    before = await receipt(store, "ntc_a:c1")
    duplicates, delivered = counted("duplicate"), changed("delivered")

    resp = await post(client, body)

    assert resp.status == 200
    assert await resp.json() == {"accepted": 0, "unknown": 0, "duplicates": 1}
    assert await receipt(store, "ntc_a:c1") == before
    assert counted("duplicate") - duplicates == 1
    assert changed("delivered") == delivered


async def test_when_one_request_repeats_a_report__then_it_is_applied_once(
    client: TestClient[Any, Any], store: Store
) -> None:
    await add_receipt(store, "ntc_a:c1", "sent", "req1-1")
    one = report("ntc_a:c1", "req1-1")

    resp = await post(client, {"reports": [one, one]})

    assert await resp.json() == {"accepted": 1, "unknown": 0, "duplicates": 1}
    assert [e["status"] for e in (await receipt(store, "ntc_a:c1"))["events"]] == [
        "sent",
        "delivered",
    ]


async def test_when_an_undelivered_report_arrives__then_the_receipt_is_undelivered_with_its_code(
    client: TestClient[Any, Any], store: Store
) -> None:
    await add_receipt(store, "ntc_a:c2", "sent", "req1-2")
    undelivered = changed("undelivered")
    entry = report(
        "ntc_a:c2", "req1-2", "UNDELIVERED", resultMessage="no such number 010-1234-5678"
    )

    resp = await post(client, {"reports": [entry]})

    assert await resp.json() == {"accepted": 1, "unknown": 0, "duplicates": 0}
    doc = await receipt(store, "ntc_a:c2")
    assert doc["status"] == "undelivered"
    assert "delivered_at" not in doc
    assert doc["reported_at"] == datetime(2026, 1, 1, 0, 0, 7, tzinfo=UTC)
    assert doc["report_code"] == "3015"
    assert doc["report_message"] == "no such number 01*****5678"
    assert doc["events"][-1]["status"] == "undelivered"
    assert changed("undelivered") - undelivered == 1


async def test_when_reports_arrive_on_the_kakao_endpoint__then_they_are_applied_and_counted_there(
    client: TestClient[Any, Any], store: Store
) -> None:
    await add_receipt(store, "ntc_k:c1", "sent", "kreq-1")
    accepted = counted("accepted", "kakao")

    resp = await post(client, {"reports": [report("ntc_k:c1", "kreq-1")]}, channel="kakao")

    assert await resp.json() == {"accepted": 1, "unknown": 0, "duplicates": 0}
    assert (await receipt(store, "ntc_k:c1"))["status"] == "delivered"
    assert counted("accepted", "kakao") - accepted == 1


async def test_when_the_channel_is_not_one_we_receive__then_it_is_not_found(
    client: TestClient[Any, Any],
) -> None:
    resp = await post(client, {"reports": [report("ntc_a:c1", "req1-1")]}, channel="email")
    assert resp.status == 404
    assert resp.content_type == PROBLEM


@pytest.mark.parametrize(
    ("secret", "age_s"),
    [("wrong-report-secret", 0), (SECRET, 301), (SECRET, -301)],
    ids=["wrong-secret", "stale", "future"],
)
async def test_when_the_signature_or_timestamp_is_bad__then_401_and_nothing_is_written(
    client: TestClient[Any, Any], store: Store, secret: str, age_s: int
) -> None:
    await add_receipt(store, "ntc_a:c1", "sent", "req1-1")
    before = await receipt(store, "ntc_a:c1")
    rejected = counted("rejected_signature")

    resp = await post(
        client,
        {"reports": [report("ntc_a:c1", "req1-1")]},
        secret=secret,
        signed_at=time.time() - age_s,
    )

    assert resp.status == 401
    assert resp.content_type == PROBLEM
    assert (await resp.json())["status"] == 401
    assert await receipt(store, "ntc_a:c1") == before
    assert counted("rejected_signature") - rejected == 1


async def test_when_the_request_is_not_signed__then_401_before_the_body_is_read(
    client: TestClient[Any, Any],
) -> None:
    rejected, invalid = counted("rejected_signature"), counted("invalid")

    resp = await client.post("/v1/reports/sms", data=b"not even json")

    assert resp.status == 401
    assert "X-Alimi-Signature" in (await resp.json())["detail"]
    assert counted("rejected_signature") - rejected == 1
    assert counted("invalid") == invalid


async def test_when_a_report_names_no_sent_message__then_200_and_it_is_counted_unknown(
    client: TestClient[Any, Any], store: Store
) -> None:
    await add_receipt(store, "ntc_a:c1", "sent", "req1-1")
    before = await receipt(store, "ntc_a:c1")
    unknown = counted("unknown")
    body = {
        "reports": [
            report("ntc_a:nobody", "req1-9"),  # no such receipt
            report("ntc_a:c1", "other-1"),  # another provider message
            report(None, "req1-1"),  # sent without a grouping key
        ]
    }

    resp = await post(client, body)

    assert resp.status == 200
    assert await resp.json() == {"accepted": 0, "unknown": 3, "duplicates": 0}
    assert await receipt(store, "ntc_a:c1") == before
    assert await store.receipts.count_documents({}) == 1
    assert counted("unknown") - unknown == 3


async def test_when_a_receipt_is_still_claimed_after_the_waits__then_503_and_the_others_applied(
    mongo_url: str, namespace: str, store: Store
) -> None:
    settings = settings_for(mongo_url, namespace, not_ready_retries=1, not_ready_wait_s=0.05)
    async with TestClient(TestServer(init_app(settings))) as client:
        await _still_claimed(client, store)


async def _still_claimed(client: TestClient[Any, Any], store: Store) -> None:
    await add_receipt(store, "ntc_a:c1", "sent", "req1-1")
    await add_receipt(store, "ntc_a:c2", "claimed", None)
    await add_receipt(store, "ntc_a:c3", "retrying", None)
    not_ready = counted("not_ready")
    body = {
        "reports": [
            report("ntc_a:c1", "req1-1"),
            report("ntc_a:c2", "req1-2"),
            report("ntc_a:c3", "req1-3", "UNDELIVERED"),
        ]
    }

    resp = await post(client, body)

    assert resp.status == 503
    assert resp.content_type == PROBLEM
    assert resp.headers["Retry-After"] == "1"
    assert (await receipt(store, "ntc_a:c1"))["status"] == "delivered"
    assert (await receipt(store, "ntc_a:c2"))["status"] == "claimed"
    assert (await receipt(store, "ntc_a:c3"))["status"] == "retrying"
    assert counted("not_ready") - not_ready == 2 * 2  # found not ready, and again after a wait

    # delivery records the send; the provider's retry then completes the request
    await store.receipts.update_one(
        {"_id": "ntc_a:c2"}, {"$set": {"status": "sent", "provider_message_id": "req1-2"}}
    )
    await store.receipts.update_one(
        {"_id": "ntc_a:c3"}, {"$set": {"status": "sent", "provider_message_id": "req1-3"}}
    )
    retried = await post(client, body)
    assert await retried.json() == {"accepted": 2, "unknown": 0, "duplicates": 1}
    assert (await receipt(store, "ntc_a:c2"))["status"] == "delivered"
    assert (await receipt(store, "ntc_a:c3"))["status"] == "undelivered"


async def test_when_a_receipt_is_marked_sent_during_the_wait__then_the_request_succeeds(
    mongo_url: str, namespace: str, store: Store
) -> None:
    settings = settings_for(mongo_url, namespace, not_ready_retries=2, not_ready_wait_s=0.3)
    await add_receipt(store, "ntc_w:c1", "sent", "req3-1")
    await add_receipt(store, "ntc_w:c2", "claimed", None)
    body = {"reports": [report("ntc_w:c1", "req3-1"), report("ntc_w:c2", "req3-2")]}

    async def delivery_records_the_send() -> None:
        await asyncio.sleep(0.1)  # after the first look, before the first wait is over
        await store.receipts.update_one(
            {"_id": "ntc_w:c2"}, {"$set": {"status": "sent", "provider_message_id": "req3-2"}}
        )

    async with TestClient(TestServer(init_app(settings))) as client:
        recording = asyncio.create_task(delivery_records_the_send())
        resp = await post(client, body)
        answer = await resp.json()
        await recording

    assert resp.status == 200
    assert answer == {"accepted": 2, "unknown": 0, "duplicates": 0}
    first, second = await receipt(store, "ntc_w:c1"), await receipt(store, "ntc_w:c2")
    assert first["status"] == second["status"] == "delivered"
    assert first["report_id"] == second["report_id"]  # one request, one stamp


async def test_when_every_turn_is_taken__then_503_busy_quickly_and_nothing_is_written(
    mongo_url: str, namespace: str, store: Store
) -> None:
    settings = settings_for(mongo_url, namespace, apply_concurrency=1, apply_wait_s=0.2)
    await add_receipt(store, "ntc_b:c1", "sent", "req2-1")
    body = {"reports": [report("ntc_b:c1", "req2-1")]}
    busy = counted("busy")
    async with TestClient(TestServer(init_app(settings))) as client:
        turns = client.server.app[CONTEXT].turns
        await turns.acquire()  # another request is being applied
        try:
            resp = await post(client, body)
        finally:
            turns.release()

        assert resp.status == 503
        assert resp.content_type == PROBLEM
        assert resp.headers["Retry-After"] == "1"
        assert "nothing was applied" in (await resp.json())["detail"]
        assert (await receipt(store, "ntc_b:c1"))["status"] == "sent"
        assert counted("busy") - busy == 1

        retried = await post(client, body)  # the provider's retry, with a turn free
        assert await retried.json() == {"accepted": 1, "unknown": 0, "duplicates": 0}
        assert (await receipt(store, "ntc_b:c1"))["status"] == "delivered"


async def test_when_a_report_misses_a_required_field__then_422_names_it_and_nothing_is_written(
    client: TestClient[Any, Any], store: Store
) -> None:
    await add_receipt(store, "ntc_a:c1", "sent", "req1-1")
    before = await receipt(store, "ntc_a:c1")
    invalid = counted("invalid")
    broken = report("ntc_a:c2", "req1-2")
    del broken["messageId"]

    resp = await post(client, {"reports": [report("ntc_a:c1", "req1-1"), broken]})

    assert resp.status == 422
    assert resp.content_type == PROBLEM
    problem = await resp.json()
    assert problem["errors"] == [{"field": "reports.1.messageId", "message": "Field required"}]
    assert "reports.1.messageId" in problem["detail"]
    assert await receipt(store, "ntc_a:c1") == before
    assert counted("invalid") - invalid == 1


async def test_when_a_signed_body_is_not_json__then_400_and_it_is_counted_invalid(
    client: TestClient[Any, Any],
) -> None:
    invalid = counted("invalid")
    raw = b'{"reports": ['
    resp = await client.post(
        "/v1/reports/sms", data=raw, headers=signature.headers(SECRET.encode(), raw)
    )
    assert resp.status == 400
    assert resp.content_type == PROBLEM
    assert counted("invalid") - invalid == 1


async def test_when_the_body_is_larger_than_the_limit__then_413_problem(
    client: TestClient[Any, Any],
) -> None:
    raw = b"x" * (4 * 1024 * 1024 + 1)
    resp = await client.post(
        "/v1/reports/sms", data=io.BytesIO(raw), headers=signature.headers(SECRET.encode(), raw)
    )
    assert resp.status == 413
    assert resp.content_type == PROBLEM
