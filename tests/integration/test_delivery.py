"""SMS delivery against the real MongoDB-wire server and the sandbox gateway over HTTP."""

from __future__ import annotations

from datetime import UTC, datetime

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from alimi import topology
from alimi.bus import Unprocessable
from alimi.messages import DeliveryBatch, Recipient
from alimi.store import Store
from support import Deliveries, receipts_of, sms_batch, statuses_of, take_batches


async def _seed_notice(store: Store, body: str = "#{name}님 안내: #{status_url}") -> None:
    await store.ensure_indexes("receipts", "attempts", "notice_counts")
    await store.incidents.insert_one(
        {"_id": "inc_1", "title": "유출", "status_url": "https://a.kr/s/x", "contact": "02-1599"}
    )
    await store.notices.insert_one(
        {
            "_id": "ntc_1",
            "incident_id": "inc_1",
            "seq": 1,
            "template": "short_notice",
            "body": body,
            "created_at": datetime.now(UTC),
        }
    )


async def test_when_a_batch_is_delivered_twice__then_each_person_gets_one_sms_and_one_receipt(
    store: Store, http: aiohttp.ClientSession, sandbox: TestServer, deliveries: Deliveries
) -> None:
    await _seed_notice(store)
    delivery = deliveries.sms()
    await delivery.handle(sms_batch())
    await delivery.handle(sms_batch())

    inbox = await deliveries.inbox()
    assert sorted(m["recipient_no"] for m in inbox) == ["01055550000", "01055550001", "01055550002"]
    assert {m["type"] for m in inbox} == {"SMS"}
    assert inbox[0]["body"].startswith("고객") and "https://a.kr/s/x" in inbox[0]["body"]
    receipts = list((await receipts_of(store)).values())
    assert [r["_id"] for r in receipts] == ["ntc_1:s0", "ntc_1:s1", "ntc_1:s2"]
    assert all(r["status"] == "sent" and r["attempts"] == 1 for r in receipts)
    assert {r["destination"] for r in receipts} == {
        "+82******0000",
        "+82******0001",
        "+82******0002",
    }
    assert {r["provider_message_id"] for r in receipts} == {m["message_id"] for m in inbox}


async def test_when_the_text_is_longer_than_90_bytes__then_it_goes_as_lms(
    store: Store, http: aiohttp.ClientSession, sandbox: TestServer, deliveries: Deliveries
) -> None:
    await _seed_notice(store, body="#{name}님, " + "개인정보 유출 사고 안내입니다. " * 5)
    await deliveries.sms().handle(sms_batch(1))
    inbox = await deliveries.inbox()
    assert [m["type"] for m in inbox] == ["LMS"]
    assert inbox[0]["title"] == "유출"


async def test_when_the_provider_fails__then_receipts_wait_for_a_retry_that_sends_once(
    store: Store, http: aiohttp.ClientSession, sandbox: TestServer, deliveries: Deliveries
) -> None:
    await _seed_notice(store)
    delivery = deliveries.sms()
    await deliveries.configure(error_rate=1.0)
    await delivery.handle(sms_batch())
    assert set((await statuses_of(store)).values()) == {"retrying"}
    assert await deliveries.inbox() == []
    # Only the people to retry wait in the first retry step, as attempt 2.
    [again] = await take_batches(delivery.bus, topology.retry_queue("sms", 1))
    assert (again.attempt, again.batch_id) == (2, "ntc_1:sms:00000001:a2")
    assert len(again.recipients) == 3

    await deliveries.configure(error_rate=0.0)
    await delivery.handle(again)
    await delivery.handle(again)  # redelivered: nothing more
    receipts = await receipts_of(store)
    assert {(r["status"], r["attempts"]) for r in receipts.values()} == {("sent", 2)}
    assert len(await deliveries.inbox()) == 3


async def test_when_the_provider_refuses_the_sender__then_receipts_fail_with_its_code(
    store: Store, http: aiohttp.ClientSession, sandbox: TestServer, deliveries: Deliveries
) -> None:
    await _seed_notice(store)
    await deliveries.sms(sender_no="0200000000").handle(sms_batch())
    receipts = await receipts_of(store)
    assert {(r["status"], r["error_code"]) for r in receipts.values()} == {("failed", "-2000")}


async def test_when_the_notice_does_not_exist__then_the_batch_is_unprocessable(
    store: Store, http: aiohttp.ClientSession, sandbox: TestServer, deliveries: Deliveries
) -> None:
    with pytest.raises(Unprocessable):
        await deliveries.sms().handle(sms_batch(notice_id="ntc_missing"))
    assert await store.receipts.count_documents({}) == 0


async def test_when_a_number_is_international__then_its_receipt_counts_gsm_segments(
    store: Store, http: aiohttp.ClientSession, sandbox: TestServer, deliveries: Deliveries
) -> None:
    await _seed_notice(store, body="Dear #{name}, your data was exposed: #{status_url} " * 4)
    abroad = DeliveryBatch(
        batch_id="ntc_1:sms:00000001",
        notice_id="ntc_1",
        incident_id="inc_1",
        channel="sms",
        recipients=(
            Recipient(subject_id="uk", phone="+447700900123", name="Ann"),
            Recipient(subject_id="kr", phone="+821055550000", name="Kim"),
        ),
    )
    await deliveries.sms().handle(abroad)
    receipts = await receipts_of(store)
    assert (receipts["uk"]["encoding"], receipts["uk"]["segments"]) == ("GSM-7", 2)
    assert "segments" not in receipts["kr"]
    [uk] = [m for m in await deliveries.inbox() if m["recipient_no"] == "447700900123"]
    assert uk["body"].startswith("Dear Ann, your data")
