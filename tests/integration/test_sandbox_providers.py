"""The Kakao AlimTalk and Slack simulators, delivery reports and the status query, over HTTP."""

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient

from alimi_sandbox import Behaviour, SandboxConfig, init_app
from alimi_sandbox.suffixes import SuffixRanges

APP_KEY = "test-app-key"
SECRET = "test-secret"
AUTH = {"X-Secret-Key": SECRET}
SENDER = "0215990000"
SENDER_KEY = "test-sender-key"
KAKAO_PATH = f"/alimtalk/v2.3/appkeys/{APP_KEY}/messages"
SMS_PATH = f"/sms/v3.0/appKeys/{APP_KEY}/sender/sms"
QUERY_PATH = f"/sms/v3.0/appKeys/{APP_KEY}/sender/messages"
REPORT_SECRET = "test-report-secret"
BUTTON = {"ordering": 1, "type": "WL", "name": "상세", "linkMo": "https://s.example/i/1"}

ClientFactory = Callable[..., Awaitable[TestClient[Any, Any]]]


@dataclass
class Receiver:
    """A tiny report webhook: verifies the signature, records reports, answers as told."""

    answers: list[int] = field(default_factory=list)  # statuses to answer first, then 200
    reports: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    calls: list[int] = field(default_factory=list)
    bad_signatures: int = 0

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        timestamp = request.headers["X-Alimi-Timestamp"]
        expected = hmac.new(
            REPORT_SECRET.encode(), f"{timestamp}.".encode() + body, hashlib.sha256
        ).hexdigest()
        valid = hmac.compare_digest(request.headers["X-Alimi-Signature"], f"v1={expected}")
        fresh = abs(time.time() - int(timestamp)) <= 300
        if not (valid and fresh and request.content_type == "application/json"):
            self.bad_signatures += 1
            return web.json_response({"title": "bad signature"}, status=401)
        status = self.answers.pop(0) if self.answers else 200
        self.calls.append(status)
        if status != 200:
            return web.json_response({"title": "not yet"}, status=status)
        reports = json.loads(body)["reports"]
        self.reports.setdefault(request.match_info["channel"], []).extend(reports)
        return web.json_response({"accepted": len(reports), "unknown": 0, "duplicates": 0})

    async def wait_for(self, channel: str, count: int, within: float = 10) -> list[dict[str, Any]]:
        deadline = time.monotonic() + within
        while len(self.reports.get(channel, [])) < count:
            assert time.monotonic() < deadline, f"only {self.reports.get(channel)} arrived"
            await asyncio.sleep(0.02)
        return self.reports[channel]


@pytest.fixture
async def stack() -> AsyncIterator[AsyncExitStack]:
    async with AsyncExitStack() as exits:
        yield exits


@pytest.fixture
async def receiver(stack: AsyncExitStack) -> tuple[Receiver, str]:
    receiver = Receiver()
    app = web.Application()
    app.router.add_post("/v1/reports/{channel}", receiver.handle)
    server = await stack.enter_async_context(TestServer(app))
    return receiver, str(server.make_url("/v1/reports"))


@pytest.fixture
async def make_client(stack: AsyncExitStack) -> ClientFactory:
    async def make(behaviour: Behaviour | None = None, **overrides: Any) -> TestClient[Any, Any]:
        settings: dict[str, Any] = {
            "app_key": APP_KEY,
            "secret_key": SECRET,
            "sender_numbers": frozenset({SENDER}),
            "behaviour": behaviour or Behaviour(latency_ms=0),
            "seed": 1,
            "kakao_sender_key": SENDER_KEY,
            "report_secret": REPORT_SECRET,
            "report_delay_ms": 10,
            "report_retry_delays": (0.05, 0.05, 0.05, 0.05, 0.05),
        }
        config = SandboxConfig(**(settings | overrides))
        return await stack.enter_async_context(TestClient(TestServer(init_app(config))))

    return make


@pytest.fixture
async def client(make_client: ClientFactory) -> TestClient[Any, Any]:
    return await make_client()


async def reports_settled(
    client: TestClient[Any, Any], until: Callable[[dict[str, Any]], bool], within: float = 10
) -> dict[str, Any]:
    """The sandbox's report stats once ``until`` holds and no report is pending or in
    flight: every report owed for what the sandbox accepted has been posted or given up."""
    deadline = time.monotonic() + within
    while True:
        stats = await (await client.get("/_sandbox/reports/stats")).json()
        if until(stats) and stats["pending"] == 0 and stats["in_flight_batches"] == 0:
            return stats
        assert time.monotonic() < deadline, f"reports did not settle: {stats}"
        await asyncio.sleep(0.02)


def alimtalk(
    recipients: list[dict[str, Any]] | None = None, template: str = "ALIMI_UPDATE"
) -> dict[str, Any]:
    if recipients is None:
        recipients = [kakao_recipient("01012345678", "receipt-1")]
    return {"senderKey": SENDER_KEY, "templateCode": template, "recipientList": recipients}


def kakao_recipient(number: str, key: str, **parameters: str) -> dict[str, Any]:
    values = {"organization": "알리미", "name": "김민준", "summary": "조사 완료", "status_url": "u"}
    return {
        "recipientNo": number,
        "recipientGroupingKey": key,
        "templateParameter": values | parameters,
        "buttons": [BUTTON],
    }


async def test_when_an_alimtalk_is_valid__then_the_response_has_the_nhn_shape_and_is_recorded(
    client: TestClient[Any, Any],
) -> None:
    response = await client.post(KAKAO_PATH, json=alimtalk(), headers=AUTH)

    assert response.status == 200
    payload = await response.json()
    assert payload["header"] == {"isSuccessful": True, "resultCode": 0, "resultMessage": "SUCCESS"}
    message = payload["message"]
    assert message["senderGroupingKey"] is None
    assert message["sendResults"] == [
        {
            "recipientSeq": 1,
            "recipientNo": "01012345678",
            "resultCode": 0,
            "resultMessage": "SUCCESS",
            "recipientGroupingKey": "receipt-1",
        }
    ]
    listing = await (await client.get("/_sandbox/kakao/messages")).json()
    assert listing["count"] == 1
    [recorded] = listing["messages"]
    assert recorded["message_id"] == f"{message['requestId']}-1"
    assert recorded["text"] == "[알리미] 조사 진행 안내\n김민준님, 조사 완료\nu"
    assert (recorded["buttons"], recorded["grouping_key"]) == ([BUTTON], "receipt-1")
    assert recorded["template_code"] == "ALIMI_UPDATE"


async def test_when_the_template_is_unknown__then_3003_and_nothing_recorded(
    client: TestClient[Any, Any],
) -> None:
    response = await client.post(KAKAO_PATH, json=alimtalk(template="NOPE"), headers=AUTH)

    assert response.status == 200
    assert await response.json() == {
        "header": {
            "isSuccessful": False,
            "resultCode": -3003,
            "resultMessage": "template not found",
        }
    }
    assert (await (await client.get("/_sandbox/kakao/messages")).json())["count"] == 0


async def test_when_the_sender_key_is_wrong__then_3001(client: TestClient[Any, Any]) -> None:
    body = alimtalk() | {"senderKey": "other"}
    response = await client.post(KAKAO_PATH, json=body, headers=AUTH)
    assert (await response.json())["header"]["resultCode"] == -3001


async def test_when_the_kakao_secret_is_wrong__then_401(client: TestClient[Any, Any]) -> None:
    response = await client.post(KAKAO_PATH, json=alimtalk(), headers={"X-Secret-Key": "x"})
    assert response.status == 401


async def test_when_recipients_differ__then_each_gets_its_own_result_code(
    client: TestClient[Any, Any],
) -> None:
    changes = {"kakao_not_user_suffixes": "7000-9999", "kakao_uncertain_suffixes": "5000-5999"}
    assert (await client.put("/_sandbox/config", json=changes)).status == 200
    short = kakao_recipient("01011110001", "r-2")
    del short["templateParameter"]["summary"]
    recipients = [
        kakao_recipient("01011110000", "r-1"),
        short,
        kakao_recipient("01011117000", "r-3"),
        kakao_recipient("01011115000", "r-4"),
    ]

    response = await client.post(KAKAO_PATH, json=alimtalk(recipients), headers=AUTH)

    results = (await response.json())["message"]["sendResults"]
    assert [(r["recipientGroupingKey"], r["resultCode"]) for r in results] == [
        ("r-1", 0),
        ("r-2", -3011),
        ("r-3", 3018),
        ("r-4", 3005),
    ]
    listing = await (await client.get("/_sandbox/kakao/messages")).json()
    assert [m["grouping_key"] for m in listing["messages"]] == ["r-1"]


async def test_when_templates_are_replaced__then_only_the_new_ones_are_known(
    client: TestClient[Any, Any],
) -> None:
    templates = {"T1": {"content": "#{who}님 안녕하세요", "buttons": 0}}
    response = await client.put("/_sandbox/kakao/templates", json=templates)
    assert await response.json() == templates
    recipient = {"recipientNo": "01012345678", "templateParameter": {"who": "이"}}

    ok = await client.post(KAKAO_PATH, json=alimtalk([recipient], "T1"), headers=AUTH)
    gone = await client.post(KAKAO_PATH, json=alimtalk([recipient]), headers=AUTH)

    assert (await ok.json())["message"]["sendResults"][0]["resultCode"] == 0
    assert (await gone.json())["header"]["resultCode"] == -3003
    bad = await client.put("/_sandbox/kakao/templates", json={"T2": {"buttons": 1}})
    assert (bad.status, (await bad.json())["field"]) == (422, "T2")


async def test_when_the_volume_limit_is_exceeded__then_429_with_retry_after(
    client: TestClient[Any, Any],
) -> None:
    await client.put("/_sandbox/config", json={"kakao_volume_limit": 2})

    statuses = []
    for _ in range(3):
        response = await client.post(KAKAO_PATH, json=alimtalk(), headers=AUTH)
        statuses.append(response.status)

    assert statuses == [200, 200, 429]
    assert response.headers["Retry-After"] == "1"
    assert (await response.json())["header"] == {
        "isSuccessful": False,
        "resultCode": -1030,
        "resultMessage": "volume exceeded",
    }


async def test_when_the_kakao_inbox_is_cleared__then_it_is_empty(
    client: TestClient[Any, Any],
) -> None:
    await client.post(KAKAO_PATH, json=alimtalk(), headers=AUTH)
    assert await (await client.delete("/_sandbox/kakao/messages")).json() == {"deleted": 1}
    assert await (await client.get("/_sandbox/kakao/messages")).json() == {
        "messages": [],
        "count": 0,
    }


# --- Slack -------------------------------------------------------------------------------


def slack_client(client: TestClient[Any, Any], token: str = "xoxb-sandbox-token") -> AsyncWebClient:
    return AsyncWebClient(token=token, base_url=str(client.make_url("/slack/api/")))


async def test_when_slack_sdk_posts_and_updates__then_the_sandbox_records_both(
    client: TestClient[Any, Any],
) -> None:
    slack = slack_client(client)
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "*발송 시작*"}}]

    posted = await slack.chat_postMessage(channel="C-INCIDENT", text="발송 시작", blocks=blocks)
    reply = await slack.chat_postMessage(channel="C-INCIDENT", text="50%", thread_ts=posted["ts"])
    updated = await slack.chat_update(channel="C-INCIDENT", ts=posted["ts"], text="발송 완료")

    assert posted["ok"] and posted["channel"] == "C-INCIDENT"
    assert posted["message"]["blocks"] == blocks
    assert float(reply["ts"]) > float(posted["ts"])
    assert reply["message"]["thread_ts"] == posted["ts"]
    assert updated["ts"] == posted["ts"]
    listing = await (await client.get("/_sandbox/slack/messages")).json()
    assert listing["count"] == 2
    parent, child = listing["messages"]
    assert (parent["text"], parent["reply_count"], parent["updated_at"] is not None) == (
        "발송 완료",
        1,
        True,
    )
    assert (child["thread_ts"], child["text"]) == (posted["ts"], "50%")
    assert set(parent) >= {"channel", "text", "blocks", "thread_ts", "ts", "received_at"}
    thread = await client.get("/_sandbox/slack/messages", params={"thread_ts": posted["ts"]})
    assert (await thread.json())["count"] == 2


async def test_when_the_slack_token_is_wrong__then_invalid_auth(
    client: TestClient[Any, Any],
) -> None:
    with pytest.raises(SlackApiError) as caught:
        await slack_client(client, token="xoxb-wrong").chat_postMessage(channel="C", text="hi")
    assert caught.value.response.status_code == 200
    assert caught.value.response["error"] == "invalid_auth"


async def test_when_slack_is_called_with_a_form_body__then_it_is_accepted(
    client: TestClient[Any, Any],
) -> None:
    response = await client.post(
        "/slack/api/chat.postMessage",
        data={"channel": "C1", "text": "form", "blocks": "[]"},
        headers={"Authorization": "Bearer xoxb-sandbox-token"},
    )
    payload = await response.json()
    assert (payload["ok"], payload["channel"], payload["message"]["text"]) == (True, "C1", "form")


async def test_when_a_rate_limit_is_forced__then_the_sdk_retry_handler_waits_and_succeeds(
    client: TestClient[Any, Any],
) -> None:
    await client.put("/_sandbox/slack/rate_limit", json={"count": 1, "retry_after": 0})
    slack = slack_client(client)
    slack.retry_handlers.append(AsyncRateLimitErrorRetryHandler(max_retry_count=2))

    response = await slack.chat_postMessage(channel="C", text="after a 429")

    assert response["ok"]
    listing = await (await client.get("/_sandbox/slack/messages")).json()
    assert [m["text"] for m in listing["messages"]] == ["after a 429"]


async def test_when_a_rate_limit_is_forced__then_429_carries_retry_after(
    client: TestClient[Any, Any],
) -> None:
    await client.put("/_sandbox/slack/rate_limit", json={"count": 2, "retry_after": 7})
    headers = {"Authorization": "Bearer xoxb-sandbox-token"}
    body = {"channel": "C", "text": "x"}

    first = await client.post("/slack/api/chat.postMessage", json=body, headers=headers)
    second = await client.post("/slack/api/chat.update", json=body, headers=headers)
    third = await client.post("/slack/api/chat.postMessage", json=body, headers=headers)

    assert (first.status, first.headers["Retry-After"]) == (429, "7")
    assert await first.json() == {"ok": False, "error": "ratelimited"}
    assert second.status == 429
    assert third.status == 200
    assert (await client.delete("/_sandbox/slack/messages")).status == 200


# --- Delivery reports ----------------------------------------------------------------------


async def test_when_reports_are_configured__then_signed_batches_arrive_for_sms_and_kakao(
    make_client: ClientFactory, receiver: tuple[Receiver, str]
) -> None:
    recorder, base = receiver
    client = await make_client(
        behaviour=Behaviour(latency_ms=0, sms_undelivered_suffixes=SuffixRanges.parse("9000-9999")),
        sms_report_url=f"{base}/sms",
        kakao_report_url=f"{base}/kakao",
    )
    sms = {
        "body": "안내",
        "sendNo": SENDER,
        "recipientList": [
            {"recipientNo": "01012340000", "recipientGroupingKey": "ntc_1:a"},
            {"recipientNo": "01012349000", "recipientGroupingKey": "ntc_1:b"},
            {"recipientNo": "12", "recipientGroupingKey": "ntc_1:bad"},
        ],
    }
    sent = await (await client.post(SMS_PATH, json=sms, headers=AUTH)).json()
    kakao = alimtalk([kakao_recipient("01012345678", "ntc_1:c"), {"recipientNo": "01012345679"}])
    await client.post(KAKAO_PATH, json=kakao, headers=AUTH)

    sms_reports = await recorder.wait_for("sms", 2)
    kakao_reports = await recorder.wait_for("kakao", 1)

    request_id = sent["body"]["data"]["requestId"]
    assert [(r["messageId"], r["status"], r["resultCode"]) for r in sms_reports] == [
        (f"{request_id}-1", "DELIVERED", "1000"),
        (f"{request_id}-2", "UNDELIVERED", "3015"),
    ]
    assert sms_reports[0]["recipientGroupingKey"] == "ntc_1:a"
    assert sms_reports[0]["deliveredAt"].endswith("+00:00")
    assert [(r["recipientGroupingKey"], r["status"]) for r in kakao_reports] == [
        ("ntc_1:c", "DELIVERED")
    ]
    assert recorder.bad_signatures == 0
    stats = await reports_settled(client, lambda s: s["sent"] >= 3)
    assert len(recorder.reports["kakao"]) == 1  # the template mismatch got no report
    assert (stats["sent"], stats["failed"], stats["dropped"], stats["pending"]) == (3, 0, 0, 0)


async def test_when_the_receiver_answers_503__then_the_batch_is_retried_until_accepted(
    make_client: ClientFactory, receiver: tuple[Receiver, str]
) -> None:
    recorder, base = receiver
    recorder.answers = [503, 503]
    client = await make_client(sms_report_url=f"{base}/sms")
    recipients = [
        {"recipientNo": f"0101234{i:04d}", "recipientGroupingKey": f"k{i}"} for i in range(3)
    ]

    await client.post(
        SMS_PATH, json={"body": "x", "sendNo": SENDER, "recipientList": recipients}, headers=AUTH
    )

    reports = await recorder.wait_for("sms", 3)
    assert [r["recipientGroupingKey"] for r in reports] == ["k0", "k1", "k2"]
    assert recorder.calls == [503, 503, 200]
    stats = await (await client.get("/_sandbox/reports/stats")).json()
    assert (stats["sent"], stats["retried"], stats["failed"]) == (3, 6, 0)


async def test_when_the_receiver_answers_401__then_the_batch_is_not_retried(
    make_client: ClientFactory, receiver: tuple[Receiver, str]
) -> None:
    recorder, base = receiver
    client = await make_client(sms_report_url=f"{base}/sms", report_secret="wrong-secret")
    body = {"body": "x", "sendNo": SENDER, "recipientList": [{"recipientNo": "01012345678"}]}

    await client.post(SMS_PATH, json=body, headers=AUTH)

    # A batch counts as failed once the reporter has given it up: no attempt follows.
    stats = await reports_settled(client, lambda s: s["failed"] >= 1)
    assert recorder.bad_signatures == 1
    assert (stats["failed"], stats["retried"], stats["sent"]) == (1, 0, 0)


async def test_when_the_receiver_keeps_failing__then_the_batch_is_dropped_after_5_retries(
    make_client: ClientFactory, receiver: tuple[Receiver, str]
) -> None:
    recorder, base = receiver
    recorder.answers = [500] * 10
    client = await make_client(kakao_report_url=f"{base}/kakao")

    await client.post(KAKAO_PATH, json=alimtalk(), headers=AUTH)

    deadline = time.monotonic() + 5
    while (stats := await (await client.get("/_sandbox/reports/stats")).json())["dropped"] < 1:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)
    assert recorder.calls == [500] * 6
    assert (stats["retried"], stats["sent"]) == (5, 0)


async def test_when_many_messages_are_accepted__then_reports_come_in_batches_of_at_most_1000(
    make_client: ClientFactory, receiver: tuple[Receiver, str]
) -> None:
    recorder, base = receiver
    client = await make_client(sms_report_url=f"{base}/sms", report_delay_ms=100)
    for batch in range(3):
        recipients = [
            {"recipientNo": f"010{batch}{i:07d}", "recipientGroupingKey": f"{batch}-{i}"}
            for i in range(1000)
        ]
        body = {"body": "x", "sendNo": SENDER, "recipientList": recipients}
        await client.post(SMS_PATH, json=body, headers=AUTH)

    reports = await recorder.wait_for("sms", 3000)

    assert len({r["messageId"] for r in reports}) == 3000
    assert len(recorder.calls) == 3


# --- Status query by recipientGroupingKey ---------------------------------------------------


async def test_when_queried_by_grouping_key__then_every_accepted_message_with_it_is_listed(
    client: TestClient[Any, Any],
) -> None:
    body = {
        "body": "x",
        "sendNo": SENDER,
        "recipientList": [
            {"recipientNo": "01012345678", "recipientGroupingKey": "ntc_1:a"},
            {"recipientNo": "01012345679", "recipientGroupingKey": "ntc_1:b"},
        ],
    }
    first = await (await client.post(SMS_PATH, json=body, headers=AUTH)).json()
    second = await (await client.post(SMS_PATH, json=body, headers=AUTH)).json()

    response = await client.get(
        QUERY_PATH, params={"recipientGroupingKey": "ntc_1:b"}, headers=AUTH
    )

    payload = await response.json()
    assert payload["header"]["isSuccessful"] is True
    assert payload["body"]["data"] == [
        {
            "requestId": sent["body"]["data"]["requestId"],
            "recipientSeq": 2,
            "recipientNo": "01012345679",
            "msgStatus": "3",
            "recipientGroupingKey": "ntc_1:b",
        }
        for sent in (first, second)
    ]
    none = await client.get(QUERY_PATH, params={"recipientGroupingKey": "x"}, headers=AUTH)
    assert (await none.json())["body"]["data"] == []


async def test_when_the_status_query_lacks_the_secret_or_key__then_it_is_refused(
    client: TestClient[Any, Any],
) -> None:
    unauthorised = await client.get(QUERY_PATH, params={"recipientGroupingKey": "k"})
    missing = await client.get(QUERY_PATH, headers=AUTH)
    assert (unauthorised.status, missing.status) == (401, 400)


# --- AlimTalk status query by recipientGroupingKey ------------------------------------------


async def test_when_alimtalk_is_queried_by_grouping_key__then_its_messages_come_in_nhn_shape(
    make_client: ClientFactory,
) -> None:
    client = await make_client(
        behaviour=Behaviour(latency_ms=0, kakao_undelivered_suffixes=SuffixRanges.parse("9000"))
    )
    recipients = [kakao_recipient("01012345678", "ntc_1:a"), kakao_recipient("01012349000", "b")]
    body = alimtalk(recipients) | {"senderGroupingKey": "ntc_1"}
    first = await (await client.post(KAKAO_PATH, json=body, headers=AUTH)).json()
    second = await (await client.post(KAKAO_PATH, json=body, headers=AUTH)).json()

    response = await client.get(
        KAKAO_PATH, params={"recipientGroupingKey": "ntc_1:a"}, headers=AUTH
    )

    assert response.status == 200
    payload = await response.json()
    assert payload["header"] == {"isSuccessful": True, "resultCode": 0, "resultMessage": "SUCCESS"}
    result = payload["messageSearchResultResponse"]
    assert result["totalCount"] == 2
    assert result["messages"] == [
        {
            "requestId": sent["message"]["requestId"],
            "recipientSeq": 1,
            "senderKey": SENDER_KEY,
            "templateCode": "ALIMI_UPDATE",
            "recipientNo": "01012345678",
            "content": "[알리미] 조사 진행 안내\n김민준님, 조사 완료\nu",
            "messageStatus": "COMPLETED",
            "resultCode": "1000",
            "resultCodeName": "Delivered",
            "buttons": [BUTTON],
            "senderGroupingKey": "ntc_1",
            "recipientGroupingKey": "ntc_1:a",
        }
        for sent in (first, second)
    ]
    lost = await client.get(KAKAO_PATH, params={"recipientGroupingKey": "b"}, headers=AUTH)
    [entry, _] = (await lost.json())["messageSearchResultResponse"]["messages"]
    assert (entry["messageStatus"], entry["resultCode"]) == ("FAILED", "3016")


async def test_when_no_alimtalk_carried_the_key__then_the_list_is_empty(
    client: TestClient[Any, Any],
) -> None:
    refused = kakao_recipient("01012345678", "ntc_1:refused")
    del refused["templateParameter"]["summary"]  # -3011: not taken, so not listed
    await client.post(KAKAO_PATH, json=alimtalk([refused]), headers=AUTH)

    for key in ("ntc_1:never", "ntc_1:refused"):
        response = await client.get(KAKAO_PATH, params={"recipientGroupingKey": key}, headers=AUTH)
        assert await response.json() == {
            "header": {"isSuccessful": True, "resultCode": 0, "resultMessage": "SUCCESS"},
            "messageSearchResultResponse": {"messages": [], "totalCount": 0},
        }


async def test_when_the_kakao_inbox_is_cleared__then_the_status_query_forgets_too(
    client: TestClient[Any, Any],
) -> None:
    await client.post(KAKAO_PATH, json=alimtalk(), headers=AUTH)
    await client.delete("/_sandbox/kakao/messages")

    response = await client.get(
        KAKAO_PATH, params={"recipientGroupingKey": "receipt-1"}, headers=AUTH
    )

    assert (await response.json())["messageSearchResultResponse"]["totalCount"] == 0


@pytest.mark.parametrize(
    ("path", "params", "headers", "status", "code"),
    [
        (KAKAO_PATH, {}, AUTH, 400, -1),
        (KAKAO_PATH, {"recipientGroupingKey": ""}, AUTH, 400, -1),
        (KAKAO_PATH, {"recipientGroupingKey": "k"}, {}, 401, -1000),
        (KAKAO_PATH, {"recipientGroupingKey": "k"}, {"X-Secret-Key": "x"}, 401, -1000),
        ("/alimtalk/v2.3/appkeys/other/messages", {"recipientGroupingKey": "k"}, AUTH, 401, -1001),
    ],
)
async def test_when_the_alimtalk_status_query_is_incomplete__then_it_is_refused_like_sms(
    client: TestClient[Any, Any],
    path: str,
    params: dict[str, str],
    headers: dict[str, str],
    status: int,
    code: int,
) -> None:
    response = await client.get(path, params=params, headers=headers)

    assert response.status == status
    header = (await response.json())["header"]
    assert (header["isSuccessful"], header["resultCode"]) == (False, code)


async def test_when_the_receiver_is_down__then_pending_reports_wait_on_disk_not_in_memory(
    make_client: ClientFactory, receiver: tuple[Receiver, str]
) -> None:
    recorder, base = receiver
    recorder.answers = [503] * 6  # down for the first posts
    client = await make_client(sms_report_url=f"{base}/sms", report_max_in_memory=5)
    keys = []
    for request in range(3):
        recipients = [
            {
                "recipientNo": f"0101234{request}{i:03d}",
                "recipientGroupingKey": f"ntc_1:{request}-{i}",
            }
            for i in range(10)
        ]
        keys += [r["recipientGroupingKey"] for r in recipients]
        body = {"body": "안내", "sendNo": SENDER, "recipientList": recipients}
        assert (await client.post(SMS_PATH, json=body, headers=AUTH)).status == 200
    most_in_memory = 0
    deadline = time.monotonic() + 20
    while len(recorder.reports.get("sms", [])) < len(keys):
        stats = await (await client.get("/_sandbox/reports/stats")).json()
        most_in_memory = max(most_in_memory, stats["pending_in_memory"])
        assert time.monotonic() < deadline, f"only {len(recorder.reports.get('sms', []))} arrived"
        await asyncio.sleep(0.01)

    assert 503 in recorder.calls  # the receiver really was down meanwhile
    assert most_in_memory <= 5
    # Each once (posts retry independently, so their order may change).
    assert sorted(r["recipientGroupingKey"] for r in recorder.reports["sms"]) == sorted(keys)
    stats = await (await client.get("/_sandbox/reports/stats")).json()
    assert (stats["pending"], stats["dropped"]) == (0, 0)
