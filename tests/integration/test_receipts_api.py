"""The receipts webhook and its inbox applier in-process, against the real MongoDB-wire server."""

from __future__ import annotations

import asyncio
import io
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import REGISTRY
from pydantic import SecretStr

from alimi import attempts, counters, ids, receipt_view, states
from alimi import report_signature as signature
from alimi.counters import Shards
from alimi.store import Store
from alimi_receipts import applier, inbox
from alimi_receipts.app import init_app
from alimi_receipts.context import CONTEXT
from alimi_receipts.models import Report
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
        apply_after_s=0.0,
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


async def claim(store: Store, notice_id: str, subjects: list[str], attempt_id: str) -> None:
    """Receipts claimed by ``attempt_id`` (its outcome not written yet), as delivery makes them."""
    await store.receipts.insert_many(
        [
            {
                "_id": ids.receipt_id(notice_id, s),
                "notice_id": notice_id,
                "incident_id": "inc_1",
                "subject_id": s,
                "channel": "sms",
                "attempt": attempt_id,
                "claimed_at": SENT_AT,
                "destination": "+82******5678",
            }
            for s in subjects
        ]
    )


async def record_sent(
    store: Store, notice_id: str, sent: dict[str, str], attempt_id: str, channel: str = "sms"
) -> None:
    """Delivery writes the attempt: each subject ``sent`` with its provider message id."""
    doc = attempts.document(
        attempt_id,
        kind=attempts.SEND,
        notice_id=notice_id,
        incident_id="inc_1",
        channel=channel,
        at=SENT_AT,
        outcomes=[attempts.Outcome(s, states.SENT, message_id=m) for s, m in sent.items()],
    )
    await store.attempts.insert_one(doc)
    await counters.add(
        store, notice_id, counters.Delta().add(channel, states.SENT, len(sent)), shard="test"
    )


async def sent(
    store: Store, notice_id: str, by_subject: dict[str, str], channel: str = "sms"
) -> str:
    attempt_id = ids.attempt_id(f"{notice_id}:{channel}:00000001")
    await claim(store, notice_id, list(by_subject), attempt_id)
    await record_sent(store, notice_id, by_subject, attempt_id, channel)
    return attempt_id


async def view(store: Store, key: str) -> receipt_view.ReceiptView:
    return (await receipt_view.read(store, [key]))[key]


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


async def until(check: Callable[[], Awaitable[bool]], what: str, timeout_s: float = 15) -> None:
    """Wait for a positive signal (the appliers run in the background)."""
    deadline = time.monotonic() + timeout_s
    while not await check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def inbox_empty(store: Store) -> bool:
    return await store.report_inbox.count_documents({}) == 0


async def test_when_a_delivered_report_arrives_for_a_sent_receipt__then_it_is_delivered(
    client: TestClient[Any, Any], store: Store
) -> None:
    await sent(store, "ntc_a", {"c1": "req1-1"})
    accepted, delivered = counted("accepted"), changed("delivered")

    resp = await post(client, {"reports": [report("ntc_a:c1", "req1-1")]})

    assert resp.status == 202, await resp.text()
    assert (await resp.json())["received"] == 1
    await until(lambda: inbox_empty(store), "the inbox to be applied")
    found = await view(store, "ntc_a:c1")
    assert found.status == "delivered"
    assert found.report is not None
    assert found.report["delivered_at"] == datetime(2026, 1, 1, 0, 0, 7, tzinfo=UTC)
    assert (found.report["code"], found.report["message"]) == ("1000", "success")
    stored = await store.delivery_reports.find_one({"_id": "ntc_a:c1"})
    assert "01012345678" not in json.dumps(stored, default=str)
    counts = await counters.of_notice(store, "ntc_a")
    assert counts.by_channel == {"sms": {"delivered": 1}}
    assert counted("accepted") - accepted == 1
    assert changed("delivered") - delivered == 1


async def test_when_the_same_report_arrives_again__then_it_is_applied_once_and_a_duplicate(
    client: TestClient[Any, Any], store: Store
) -> None:
    await sent(store, "ntc_a", {"c1": "req1-1"})
    body = {"reports": [report("ntc_a:c1", "req1-1")]}
    assert (await post(client, body)).status == 202
    await until(lambda: inbox_empty(store), "the first request to be applied")
    duplicates, delivered = counted("duplicate"), changed("delivered")

    assert (await post(client, body)).status == 202
    await until(lambda: inbox_empty(store), "the second request to be applied")

    assert counted("duplicate") - duplicates == 1
    assert changed("delivered") == delivered
    assert (await counters.of_notice(store, "ntc_a")).by_channel == {"sms": {"delivered": 1}}


async def test_when_one_request_repeats_a_report__then_it_is_applied_once(
    client: TestClient[Any, Any], store: Store
) -> None:
    await sent(store, "ntc_a", {"c1": "req1-1"})
    duplicates = counted("duplicate")
    one = report("ntc_a:c1", "req1-1")

    assert (await post(client, {"reports": [one, one]})).status == 202
    await until(lambda: inbox_empty(store), "the request to be applied")

    assert counted("duplicate") - duplicates == 1
    assert (await counters.of_notice(store, "ntc_a")).by_channel == {"sms": {"delivered": 1}}


async def test_when_an_undelivered_report_arrives__then_the_receipt_is_undelivered_with_its_code(
    client: TestClient[Any, Any], store: Store
) -> None:
    await sent(store, "ntc_a", {"c2": "req1-2"})
    undelivered = changed("undelivered")
    entry = report(
        "ntc_a:c2", "req1-2", "UNDELIVERED", resultMessage="no such number 010-1234-5678"
    )

    assert (await post(client, {"reports": [entry]})).status == 202
    await until(lambda: inbox_empty(store), "the request to be applied")

    found = await view(store, "ntc_a:c2")
    assert found.status == "undelivered"
    assert found.report is not None
    assert found.report["code"] == "3015"
    assert found.report["message"] == "no such number 01*****5678"
    assert changed("undelivered") - undelivered == 1


async def test_when_reports_arrive_on_the_kakao_endpoint__then_they_are_applied_and_counted_there(
    client: TestClient[Any, Any], store: Store
) -> None:
    await sent(store, "ntc_k", {"c1": "kreq-1"}, channel="kakao")
    accepted = counted("accepted", "kakao")

    resp = await post(client, {"reports": [report("ntc_k:c1", "kreq-1")]}, channel="kakao")

    assert resp.status == 202
    await until(lambda: inbox_empty(store), "the request to be applied")
    assert (await view(store, "ntc_k:c1")).status == "delivered"
    assert counted("accepted", "kakao") - accepted == 1
    assert (await counters.of_notice(store, "ntc_k")).by_channel == {"kakao": {"delivered": 1}}


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
async def test_when_the_signature_or_timestamp_is_bad__then_401_and_nothing_is_kept(
    client: TestClient[Any, Any], store: Store, secret: str, age_s: int
) -> None:
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
    assert await store.report_inbox.count_documents({}) == 0
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


async def test_when_a_report_names_no_sent_message__then_it_is_counted_unknown_and_not_applied(
    client: TestClient[Any, Any], store: Store
) -> None:
    await sent(store, "ntc_a", {"c1": "req1-1"})
    unknown = counted("unknown")
    body = {
        "reports": [
            report("ntc_a:nobody", "req1-9"),  # no such person in that request
            report("ntc_a:c1", "req1-7"),  # another message of the same request
            report(None, "req1-1"),  # sent without a grouping key
        ]
    }

    assert (await post(client, body)).status == 202
    await until(lambda: inbox_empty(store), "the request to be applied")

    assert counted("unknown") - unknown == 3
    assert (await view(store, "ntc_a:c1")).status == "sent"
    assert await store.delivery_reports.count_documents({}) == 0
    assert (await counters.of_notice(store, "ntc_a")).by_channel == {"sms": {"sent": 1}}


async def test_when_reports_come_before_during_and_after_their_record_and_a_restart__then_all_apply(
    mongo_url: str, namespace: str, store: Store
) -> None:
    """A provider faster than delivery: reports arrive before the attempt that sent their
    messages is recorded. Nothing is bounced: they wait in the inbox, across a restart of the
    receipts service, and are applied once the attempt is there."""
    early = ids.attempt_id("ntc_r:sms:00000001")
    late = ids.attempt_id("ntc_r:sms:00000002")
    await claim(store, "ntc_r", ["e1", "e2"], early)
    await claim(store, "ntc_r", ["l1"], late)
    settings = settings_for(mongo_url, namespace)
    waiting = counted("waiting")
    async with TestClient(TestServer(init_app(settings))) as client:
        before = {"reports": [report("ntc_r:e1", "rq-early-1"), report("ntc_r:l1", "rq-late-1")]}
        assert (await post(client, before)).status == 202
        await until(
            lambda: _true(counted("waiting") - waiting >= 2), "the reports to be found early"
        )
        await record_sent(store, "ntc_r", {"e1": "rq-early-1", "e2": "rq-early-2"}, early)
        during = {"reports": [report("ntc_r:e2", "rq-early-2", "UNDELIVERED")]}
        assert (await post(client, during)).status == 202
        await until(lambda: _status_is(store, "ntc_r:e1", "delivered"), "the early report to apply")
        await until(
            lambda: _status_is(store, "ntc_r:e2", "undelivered"), "the report during to apply"
        )
        assert (await view(store, "ntc_r:l1")).status == "claimed"  # still waiting
    # The service stops with a report waiting; a new one picks it up.
    assert await store.report_inbox.count_documents({}) == 1
    await record_sent(store, "ntc_r", {"l1": "rq-late-1"}, late)
    async with TestClient(TestServer(init_app(settings))):
        await until(lambda: _status_is(store, "ntc_r:l1", "delivered"), "the late report")
        await until(lambda: inbox_empty(store), "the inbox to empty")
    counts = await counters.of_notice(store, "ntc_r")
    assert counts.by_channel == {"sms": {"delivered": 2, "undelivered": 1}}


async def _true(value: bool) -> bool:
    return value


async def _status_is(store: Store, key: str, status: str) -> bool:
    return (await view(store, key)).status == status


async def test_when_a_report_waits_longer_than_allowed__then_it_is_given_up_loudly(
    mongo_url: str, namespace: str, store: Store
) -> None:
    await claim(store, "ntc_x", ["c1"], ids.attempt_id("ntc_x:sms:00000001"))
    expired = counted("expired")
    settings = settings_for(mongo_url, namespace, report_max_wait_s=0.3)
    async with TestClient(TestServer(init_app(settings))) as client:
        assert (await post(client, {"reports": [report("ntc_x:c1", "rq-x-1")]})).status == 202
        await until(lambda: inbox_empty(store), "the report to be given up")
    assert counted("expired") - expired == 1
    assert await store.delivery_reports.count_documents({}) == 0


async def test_when_an_inbox_document_is_taken__then_no_other_applier_takes_it_until_its_lease_ends(
    store: Store,
) -> None:
    await store.ensure_indexes("report_inbox", "attempts")
    await sent(store, "ntc_l", {"c1": "rq-l-1"})
    reports = [Report.model_validate(report("ntc_l:c1", "rq-l-1"))]
    await inbox.take_in(store, "sms", reports, apply_after_s=0)
    shards = Shards("receipts-test", slots=2)
    first = applier.Applier(store, lease_s=0.2, max_wait_s=60, shards=shards)
    second = applier.Applier(store, lease_s=60, max_wait_s=60, shards=shards)

    taken = await inbox.take(store, lease_s=0.2, owner="first")
    assert [e["n"] for e in taken] == [1]
    assert await inbox.take(store, lease_s=60, owner="second") == []  # owned
    await asyncio.sleep(0.3)  # the first owner's lease runs out (it is slow, or dead)
    assert await second.apply_next()
    # The first owner finishes late: its work is not counted a second time.
    await first.apply(taken)

    assert (await counters.of_notice(store, "ntc_l")).by_channel == {"sms": {"delivered": 1}}
    assert await store.report_inbox.count_documents({}) == 0


async def test_when_the_store_cannot_keep_reports__then_503_and_the_provider_retries(
    client: TestClient[Any, Any], store: Store
) -> None:
    unavailable = counted("unavailable")
    await client.server.app[CONTEXT].store.client.close()  # the database is gone

    resp = await post(client, {"reports": [report("ntc_a:c1", "req1-1")]})

    assert resp.status == 503
    assert resp.content_type == PROBLEM
    assert resp.headers["Retry-After"] == "1"
    assert "nothing was kept" in (await resp.json())["detail"]
    assert counted("unavailable") - unavailable == 1


async def test_when_a_report_misses_a_required_field__then_422_names_it_and_nothing_is_kept(
    client: TestClient[Any, Any], store: Store
) -> None:
    invalid = counted("invalid")
    broken = report("ntc_a:c2", "req1-2")
    del broken["messageId"]

    resp = await post(client, {"reports": [report("ntc_a:c1", "req1-1"), broken]})

    assert resp.status == 422
    assert resp.content_type == PROBLEM
    problem = await resp.json()
    assert problem["errors"] == [{"field": "reports.1.messageId", "message": "Field required"}]
    assert "reports.1.messageId" in problem["detail"]
    assert await store.report_inbox.count_documents({}) == 0
    assert counted("invalid") - invalid == 1


async def test_when_a_signed_body_is_not_json__then_400_and_it_is_counted_invalid(
    client: TestClient[Any, Any],
) -> None:
    invalid = counted("invalid")
    raw = b'{"reports": ['
    headers = {**signature.headers(SECRET.encode(), raw), "Content-Type": "application/json"}
    resp = await client.post("/v1/reports/sms", data=raw, headers=headers)
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


async def test_when_several_requests_are_due__then_one_take_applies_them_together(
    store: Store,
) -> None:
    await store.ensure_indexes("report_inbox", "attempts")
    await sent(store, "ntc_m", {f"c{i}": f"rq-m-{i}" for i in range(6)})
    for i in range(0, 6, 2):
        pair = [
            Report.model_validate(
                report(f"ntc_m:c{j}", f"rq-m-{j}", "UNDELIVERED" if j else "DELIVERED")
            )
            for j in (i, i + 1)
        ]
        await inbox.take_in(store, "sms", pair, apply_after_s=0)
    applier_ = applier.Applier(
        store, lease_s=60, max_wait_s=60, shards=Shards("receipts-test", slots=1), most_reports=4
    )

    assert await applier_.apply_next()  # the first two requests: four reports at most
    assert await store.report_inbox.count_documents({}) == 1
    assert await applier_.apply_next()
    assert not await applier_.apply_next()
    counts = await counters.of_notice(store, "ntc_m")
    assert counts.by_channel == {"sms": {"delivered": 1, "undelivered": 5}}
