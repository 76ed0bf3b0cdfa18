"""The sandbox's /_sandbox listings over real HTTP: Hangul as is, waiting for messages,
Slack messages picked by their metadata's event type."""

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient, TestServer
from slack_sdk.web.async_client import AsyncWebClient

from alimi_sandbox import INBOX, SLACK, Behaviour, SandboxConfig, init_app
from alimi_sandbox.arrivals import Arrivals

APP_KEY = "test-app-key"
SECRET = "test-secret"
AUTH = {"X-Secret-Key": SECRET}
SENDER = "0215990000"
SENDER_KEY = "test-sender-key"
SMS_PATH = f"/sms/v3.0/appKeys/{APP_KEY}/sender/sms"
KAKAO_PATH = f"/alimtalk/v2.3/appkeys/{APP_KEY}/messages"
SUMMARY = {"event_type": "alimi_notice_summary", "event_payload": {"notice_id": "ntc_1"}}


@pytest.fixture
async def client() -> AsyncIterator[TestClient[Any, Any]]:
    config = SandboxConfig(
        app_key=APP_KEY,
        secret_key=SECRET,
        sender_numbers=frozenset({SENDER}),
        behaviour=Behaviour(latency_ms=0),
        kakao_sender_key=SENDER_KEY,
        seed=1,
    )
    async with TestClient(TestServer(init_app(config))) as c:
        yield c


def slack(client: TestClient[Any, Any]) -> AsyncWebClient:
    return AsyncWebClient(token="xoxb-sandbox-token", base_url=str(client.make_url("/slack/api/")))


async def send_sms(client: TestClient[Any, Any], body: str, number: str = "01012345678") -> None:
    recipients = [{"recipientNo": number, "recipientGroupingKey": f"r-{number}"}]
    payload = {"body": body, "sendNo": SENDER, "recipientList": recipients}
    response = await client.post(SMS_PATH, json=payload, headers=AUTH)
    assert (await response.json())["header"]["isSuccessful"]


def arrivals_of(client: TestClient[Any, Any], kind: str) -> Arrivals:
    app = client.server.app
    return app[SLACK].arrivals if kind == "slack" else app[INBOX].arrivals


async def until_waiting(client: TestClient[Any, Any], kind: str) -> None:
    """Let the server take the listing request up to the point where it waits."""
    arrivals = arrivals_of(client, kind)
    for _ in range(1000):
        if arrivals.waiting:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the listing never waited")


async def waiting_listing(
    client: TestClient[Any, Any], kind: str, **filters: str
) -> asyncio.Task[ClientResponse]:
    """A listing of ``kind`` (sms or slack) for one message matching ``filters``, waiting."""
    query = {"wait_for": "1", "wait_s": "300", **filters}
    listing = asyncio.create_task(client.get(f"/_sandbox/{kind}/messages", params=query))
    await until_waiting(client, kind)
    assert not listing.done()
    return listing


async def woken(listing: asyncio.Task[ClientResponse]) -> list[dict[str, Any]]:
    """The messages of a listing that waited for one and got it."""
    answer = await (await listing).json()
    assert (answer["count"], answer["timed_out"]) == (1, False)
    messages: list[dict[str, Any]] = answer["messages"]
    return messages


# --- Hangul as is --------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/_sandbox/sms/messages", "/_sandbox/kakao/messages"])
async def test_when_a_listing_holds_hangul__then_it_is_sent_as_utf8_not_escaped(
    client: TestClient[Any, Any], path: str
) -> None:
    await send_sms(client, "개인정보 유출 안내")
    kakao = {
        "senderKey": SENDER_KEY,
        "templateCode": "ALIMI_PLAIN",
        "recipientList": [
            {
                "recipientNo": "01012345678",
                "recipientGroupingKey": "r-1",
                "templateParameter": {"text": "안내"},
            }
        ],
    }
    await client.post(KAKAO_PATH, json=kakao, headers=AUTH)

    response = await client.get(path)

    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    raw = await response.read()
    assert ("개인정보 유출 안내" if "sms" in path else "안내").encode() in raw
    assert b"\\u" not in raw


async def test_when_a_slack_listing_holds_hangul__then_it_is_sent_as_utf8_not_escaped(
    client: TestClient[Any, Any],
) -> None:
    await slack(client).chat_postMessage(channel="#incident-response", text="회원 정보 유출")

    raw = await (await client.get("/_sandbox/slack/messages")).read()

    assert "회원 정보 유출".encode() in raw and b"\\u" not in raw


async def test_when_a_problem_names_hangul__then_it_is_sent_as_utf8_not_escaped(
    client: TestClient[Any, Any],
) -> None:
    response = await client.put("/_sandbox/kakao/templates", json={"알림": {"content": 5}})

    assert response.status == 422
    assert response.headers["Content-Type"] == "application/problem+json; charset=utf-8"
    raw = await response.read()
    assert '"field": "알림"'.encode() in raw and b"\\u" not in raw


# --- waiting for messages --------------------------------------------------------------------


async def test_when_a_listing_waits_for_a_message__then_the_message_wakes_it(
    client: TestClient[Any, Any],
) -> None:
    listing = await waiting_listing(client, "sms")

    await send_sms(client, "안녕하세요")

    assert [m["body"] for m in await woken(listing)] == ["안녕하세요"]


async def test_when_a_listing_waits_for_one_number__then_other_numbers_do_not_end_the_wait(
    client: TestClient[Any, Any],
) -> None:
    listing = await waiting_listing(client, "sms", recipient_no="01099998888")

    await send_sms(client, "다른 사람", number="01011112222")
    await until_waiting(client, "sms")  # woken, checked, waiting again
    assert not listing.done()
    await send_sms(client, "이 사람", number="01099998888")

    assert [m["body"] for m in await woken(listing)] == ["이 사람"]


async def test_when_the_sandbox_stops__then_a_waiting_listing_answers_at_once(
    client: TestClient[Any, Any],
) -> None:
    listing = await waiting_listing(client, "sms")

    stopping = asyncio.create_task(client.server.close())
    answer = await (await listing).json()
    await stopping

    assert (answer["count"], answer["timed_out"]) == (0, True)


async def test_when_enough_messages_are_already_there__then_the_listing_answers_at_once(
    client: TestClient[Any, Any],
) -> None:
    await send_sms(client, "하나")
    await send_sms(client, "둘")

    answer = await (await client.get("/_sandbox/sms/messages?wait_for=2&limit=1")).json()

    assert (answer["count"], answer["timed_out"], len(answer["messages"])) == (2, False, 1)


async def test_when_too_few_messages_come_in_time__then_the_listing_says_timed_out_with_them(
    client: TestClient[Any, Any],
) -> None:
    await send_sms(client, "하나")

    response = await client.get("/_sandbox/sms/messages?wait_for=2&wait_s=0.2")

    assert response.status == 200
    answer = await response.json()
    assert (answer["count"], answer["timed_out"]) == (1, True)
    assert [m["body"] for m in answer["messages"]] == ["하나"]


async def test_when_a_listing_does_not_wait__then_its_answer_says_nothing_of_timing_out(
    client: TestClient[Any, Any],
) -> None:
    assert await (await client.get("/_sandbox/kakao/messages")).json() == {
        "messages": [],
        "count": 0,
    }


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("wait_for=-1", "wait_for"),
        ("wait_for=two", "wait_for"),
        ("wait_for=1&wait_s=301", "wait_s"),
        ("wait_for=1&wait_s=-1", "wait_s"),
        ("wait_for=1&wait_s=soon", "wait_s"),
        ("wait_s=5", "wait_s"),
        ("limit=1%0A", "limit"),
    ],
)
@pytest.mark.parametrize("kind", ["sms", "kakao", "slack"])
async def test_when_a_wait_is_malformed__then_400_problem_names_the_parameter(
    client: TestClient[Any, Any], query: str, field: str, kind: str
) -> None:
    response = await client.get(f"/_sandbox/{kind}/messages?{query}")

    assert response.status == 400
    assert response.content_type == "application/problem+json"
    assert (await response.json())["field"] == field


# --- Slack metadata ----------------------------------------------------------------------------


async def test_when_slack_messages_carry_metadata__then_it_is_kept_and_event_type_picks_them(
    client: TestClient[Any, Any],
) -> None:
    sdk = slack(client)
    parent = await sdk.chat_postMessage(channel="#incident-response", text="공지 #1 발송 시작")
    await sdk.chat_postMessage(
        channel="#incident-response", text="공지 #1 완료", thread_ts=parent["ts"], metadata=SUMMARY
    )

    listing = await client.get("/_sandbox/slack/messages?event_type=alimi_notice_summary")

    answer = await listing.json()
    assert answer["count"] == 1
    [summary] = answer["messages"]
    assert (summary["thread_ts"], summary["metadata"]) == (parent["ts"], SUMMARY)
    everything = await (await client.get("/_sandbox/slack/messages")).json()
    assert [m["metadata"] for m in everything["messages"]] == [None, SUMMARY]


async def test_when_a_slack_update_has_new_metadata__then_it_replaces_the_old_and_none_keeps_it(
    client: TestClient[Any, Any],
) -> None:
    sdk = slack(client)
    posted = await sdk.chat_postMessage(channel="C1", text="v1", metadata=SUMMARY)
    final = {"event_type": "alimi_notice_summary", "event_payload": {"final": True}}

    await sdk.chat_update(channel="C1", ts=posted["ts"], text="v2")
    kept = (await (await client.get("/_sandbox/slack/messages")).json())["messages"][0]
    await sdk.chat_update(channel="C1", ts=posted["ts"], text="v3", metadata=final)
    replaced = (await (await client.get("/_sandbox/slack/messages")).json())["messages"][0]

    assert (kept["text"], kept["metadata"]) == ("v2", SUMMARY)
    assert (replaced["text"], replaced["metadata"]) == ("v3", final)


@pytest.mark.parametrize(
    ("metadata", "error"),
    [
        ("{not json", "invalid_metadata_format"),
        ("[1]", "invalid_metadata_format"),
        ('{"event_type": "x"}', "invalid_metadata_schema"),
        ('{"event_type": "", "event_payload": {}}', "invalid_metadata_schema"),
    ],
)
async def test_when_slack_metadata_is_malformed__then_slack_s_error(
    client: TestClient[Any, Any], metadata: str, error: str
) -> None:
    response = await client.post(
        "/slack/api/chat.postMessage",
        data={"channel": "C1", "text": "x", "metadata": metadata},
        headers={"Authorization": "Bearer xoxb-sandbox-token"},
    )

    assert await response.json() == {"ok": False, "error": error}


async def test_when_a_listing_waits_for_an_event_type__then_only_that_event_wakes_it(
    client: TestClient[Any, Any],
) -> None:
    listing = await waiting_listing(client, "slack", event_type="alimi_notice_summary")
    sdk = slack(client)

    parent = await sdk.chat_postMessage(channel="#incident-response", text="발송 시작")
    await until_waiting(client, "slack")
    assert not listing.done()
    await sdk.chat_postMessage(
        channel="#incident-response", text="완료", thread_ts=parent["ts"], metadata=SUMMARY
    )

    assert [m["text"] for m in await woken(listing)] == ["완료"]
