"""Kakao AlimTalk delivery and its SMS/LMS fallback, against the real MongoDB-wire
server, the real RabbitMQ and the sandbox provider over HTTP."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from alimi import topology
from alimi.bus import Bus
from alimi.messages import DeliveryBatch, Recipient
from alimi.store import Store
from support import Deliveries, take_batches

# Numbers ending 7000-7999 are not on KakaoTalk, 8000-8999 uncertain (see _batch).
NOT_ON_KAKAO = "7000-7999"
UNCERTAIN = "8000-8999"


@pytest.fixture(autouse=True)
async def kakao_ranges(sandbox: TestServer, http: aiohttp.ClientSession) -> None:
    async with http.put(
        sandbox.make_url("/_sandbox/config"),
        json={"kakao_not_user_suffixes": NOT_ON_KAKAO, "kakao_uncertain_suffixes": UNCERTAIN},
    ) as resp:
        assert resp.status == 200, await resp.text()


async def _seed_notice(store: Store, **notice: Any) -> None:
    await store.ensure_indexes("receipts", "attempts", "notice_counts")
    await store.incidents.insert_one(
        {
            "_id": "inc_1",
            "title": "회원정보 유출",
            "status_url": "https://a.kr/s/x",
            "contact": "02-1599-0000",
        }
    )
    await store.notices.insert_one(
        {
            "_id": "ntc_1",
            "incident_id": "inc_1",
            "seq": 1,
            "template": "breach_notice",
            "locale": "ko",
            "body": "#{name}님의 이름과 전화번호가 유출되었습니다.",
            "texts": {
                "ko": {"body": "#{name}님의 이름과 전화번호가 유출되었습니다."},
                "en": {"body": "Your name and phone number were exposed."},
            },
            "created_at": datetime.now(UTC),
            **notice,
        }
    )


def _person(suffix: str, *, fallback: tuple[str, ...] = ("sms",), locale: str = "ko") -> Recipient:
    return Recipient(
        subject_id=f"s{suffix}",
        phone=f"+82105555{suffix}",
        name=f"고객{suffix}",
        locale=locale,
        fallback=fallback,  # type: ignore[arg-type]
    )


def _batch(*people: Recipient) -> DeliveryBatch:
    return DeliveryBatch(
        batch_id="ntc_1:kakao:00000001",
        notice_id="ntc_1",
        incident_id="inc_1",
        channel="kakao",
        recipients=people,
    )


async def _handed_to_sms(bus: Bus) -> list[DeliveryBatch]:
    return await take_batches(bus, topology.delivery_queue("sms"))


async def test_when_some_people_are_not_on_kakao__then_they_and_only_they_get_an_sms(
    store: Store,
    http: aiohttp.ClientSession,
    sandbox: TestServer,
    bus: Bus,
    deliveries: Deliveries,
) -> None:
    await _seed_notice(store)
    batch = _batch(_person("1000"), _person("7001"), _person("1001", locale="en"))
    await deliveries.kakao().handle(batch)

    kakao = await deliveries.inbox("kakao")
    assert sorted(m["recipient_no"] for m in kakao) == ["01055551000", "01055551001"]
    korean = next(m for m in kakao if m["recipient_no"] == "01055551000")
    assert korean["template_code"] == "ALIMI_BREACH_KO"
    assert korean["text"].startswith("[회원정보 유출]\n고객1000님, 개인정보 유출 사고를")
    assert "고객1000님의 이름과 전화번호가 유출되었습니다." in korean["text"]
    english = next(m for m in kakao if m["recipient_no"] == "01055551001")
    assert english["template_code"] == "ALIMI_BREACH_EN"
    assert "Your name and phone number were exposed." in english["text"]
    assert korean["buttons"][0]["linkMo"] == "https://a.kr/s/x"

    receipts = await deliveries.receipts()
    fell = receipts["s7001"]
    assert fell["status"] == "fell_back"
    assert (fell["fallback_from"], fell["fallback_to"], fell["kakao_error_code"]) == (
        "kakao",
        "sms",
        "3018",
    )
    assert receipts["s1000"]["status"] == receipts["s1001"]["status"] == "sent"

    [handed] = await _handed_to_sms(bus)
    assert [r.subject_id for r in handed.recipients] == ["s7001"]
    assert handed.recipients[0].fallback == ()
    await deliveries.sms().handle(handed)
    await deliveries.sms().handle(handed)  # redelivered: still one SMS

    [sms] = await deliveries.inbox("sms")
    assert sms["recipient_no"] == "01055557001"
    assert sms["type"] == "LMS" and sms["body"].startswith("[회원정보 유출]\n고객7001님")
    final = (await deliveries.receipts())["s7001"]
    assert (final["status"], final["channel"], final["fallback_from"]) == ("sent", "sms", "kakao")
    # One event per attempt: Kakao's hand-over, then the SMS that reached them.
    assert [(e["status"], e["channel"]) for e in final["events"]] == [
        ("fell_back", "kakao"),
        ("sent", "sms"),
    ]
    assert "3018" in final["events"][0]["detail"]


async def test_when_delivery_is_uncertain__then_no_sms_follows(
    store: Store,
    http: aiohttp.ClientSession,
    sandbox: TestServer,
    bus: Bus,
    deliveries: Deliveries,
) -> None:
    await _seed_notice(store)
    await deliveries.kakao().handle(_batch(_person("8001")))
    receipt = (await deliveries.receipts())["s8001"]
    assert (receipt["status"], receipt["delivery_uncertain"], receipt["provider_code"]) == (
        "sent",
        True,
        "3005",
    )
    assert await _handed_to_sms(bus) == []
    assert await deliveries.inbox("sms") == []


async def test_when_a_person_has_no_fallback__then_not_being_on_kakao_fails_their_receipt(
    store: Store,
    http: aiohttp.ClientSession,
    sandbox: TestServer,
    bus: Bus,
    deliveries: Deliveries,
) -> None:
    await _seed_notice(store)
    await deliveries.kakao().handle(_batch(_person("7002", fallback=())))
    receipt = (await deliveries.receipts())["s7002"]
    assert (receipt["status"], receipt["error_code"]) == ("failed", "3018")
    assert "no fallback channel" in receipt["error"]
    assert await _handed_to_sms(bus) == []


async def test_when_the_template_does_not_fit__then_kakao_fails_clearly_and_sms_takes_over(
    store: Store,
    http: aiohttp.ClientSession,
    sandbox: TestServer,
    bus: Bus,
    deliveries: Deliveries,
) -> None:
    await _seed_notice(store)
    # The provider's approved text no longer has the variables Alimi fills.
    async with http.put(
        sandbox.make_url("/_sandbox/kakao/templates"),
        json={"ALIMI_BREACH_KO": {"content": "#{other}", "buttons": 1}},
    ) as resp:
        assert resp.status == 200, await resp.text()
    await deliveries.kakao().handle(_batch(_person("1000")))
    receipt = (await deliveries.receipts())["s1000"]
    assert (receipt["status"], receipt["reason"]) == ("fell_back", "kakao_rejected")
    assert receipt["kakao_error_code"] == "-3011"
    assert "missing template parameters: other" in receipt["kakao_error"]
    assert [len(b.recipients) for b in await _handed_to_sms(bus)] == [1]


async def test_when_kakao_volume_is_exceeded__then_the_batch_is_retried_and_sent_once(
    store: Store,
    http: aiohttp.ClientSession,
    sandbox: TestServer,
    bus: Bus,
    deliveries: Deliveries,
) -> None:
    await _seed_notice(store)
    delivery = deliveries.kakao()
    async with http.put(
        sandbox.make_url("/_sandbox/config"), json={"kakao_volume_limit": 1}
    ) as resp:
        assert resp.status == 200
    await delivery.handle(_batch(_person("1000")))  # uses the one request of this second
    await store.receipts.delete_many({})
    await delivery.handle(_batch(_person("1000")))
    receipt = (await deliveries.receipts())["s1000"]
    assert (receipt["status"], receipt["error_code"]) == ("retrying", "volume_exceeded")
    # The provider's Retry-After paused the account's rate limit.
    assert delivery.guard.requests.wait_time(1) > 0
    [again] = await take_batches(bus, topology.retry_queue("kakao", 1))
    assert again.attempt == 2
    async with http.put(
        sandbox.make_url("/_sandbox/config"), json={"kakao_volume_limit": 0}
    ) as resp:
        assert resp.status == 200
    delivery.guard.requests.paused_until = delivery.guard.recipients.paused_until = 0
    await delivery.handle(again)
    assert (await deliveries.receipts())["s1000"]["status"] == "sent"


async def test_when_a_batch_returns_after_its_fallback_was_recorded__then_it_is_handed_over_again(
    store: Store,
    http: aiohttp.ClientSession,
    sandbox: TestServer,
    bus: Bus,
    deliveries: Deliveries,
) -> None:
    # As if the worker crashed after recording the fallback, before publishing it.
    await _seed_notice(store)
    delivery = deliveries.kakao()
    await delivery.handle(_batch(_person("7003")))
    assert len(await _handed_to_sms(bus)) == 1  # consumed: the publish is "lost"
    await delivery.handle(_batch(_person("7003")))
    [again] = await _handed_to_sms(bus)
    assert [r.subject_id for r in again.recipients] == ["s7003"]
    assert len(await deliveries.inbox("kakao")) == 0
    await deliveries.sms().handle(again)
    await delivery.handle(_batch(_person("7003")))  # now sent by SMS: nothing more
    assert await _handed_to_sms(bus) == []
    assert len(await deliveries.inbox("sms")) == 1
