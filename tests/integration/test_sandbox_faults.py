"""Injected faults over HTTP: 500s, 429s with Retry-After, and calls accepted but answered late."""

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from alimi_sandbox import Behaviour, SandboxConfig, init_app

APP_KEY = "test-app-key"
SECRET = "test-secret"
AUTH = {"X-Secret-Key": SECRET}
SENDER = "0215990000"
SENDER_KEY = "test-sender-key"
SMS_PATH = f"/sms/v3.0/appKeys/{APP_KEY}/sender/sms"
SMS_QUERY_PATH = f"/sms/v3.0/appKeys/{APP_KEY}/sender/messages"
KAKAO_PATH = f"/alimtalk/v2.3/appkeys/{APP_KEY}/messages"
IMPATIENT = aiohttp.ClientTimeout(total=0.1)

ClientFactory = Callable[..., Awaitable[TestClient[Any, Any]]]


def config(seed: int = 1, **behaviour: Any) -> SandboxConfig:
    return SandboxConfig(
        app_key=APP_KEY,
        secret_key=SECRET,
        sender_numbers=frozenset({SENDER}),
        behaviour=Behaviour(**({"latency_ms": 0} | behaviour)),
        seed=seed,
        kakao_sender_key=SENDER_KEY,
    )


@pytest.fixture
async def make_client() -> AsyncIterator[ClientFactory]:
    async with AsyncExitStack() as stack:

        async def make(seed: int = 1, **behaviour: Any) -> TestClient[Any, Any]:
            app = init_app(config(seed, **behaviour))
            return await stack.enter_async_context(TestClient(TestServer(app)))

        yield make


def sms(key: str = "ntc_1:a", number: str = "01012345678") -> dict[str, Any]:
    recipients = [{"recipientNo": number, "recipientGroupingKey": key}]
    return {"body": "안내", "sendNo": SENDER, "recipientList": recipients}


def alimtalk(key: str = "ntc_1:a") -> dict[str, Any]:
    recipient = {
        "recipientNo": "01012345678",
        "templateParameter": {"text": "안내"},
        "recipientGroupingKey": key,
    }
    return {"senderKey": SENDER_KEY, "templateCode": "ALIMI_PLAIN", "recipientList": [recipient]}


async def count(client: TestClient[Any, Any], channel: str) -> int:
    return (await (await client.get(f"/_sandbox/{channel}/messages")).json())["count"]


# --- 429 ----------------------------------------------------------------------------------


async def test_when_rate_limit_rate_is_1__then_sms_gets_429_with_retry_after_and_is_not_taken(
    make_client: ClientFactory,
) -> None:
    client = await make_client()
    changed = await client.put("/_sandbox/config", json={"rate_limit_rate": 1, "retry_after_s": 7})
    assert changed.status == 200

    response = await client.post(SMS_PATH, json=sms(), headers=AUTH)

    assert (response.status, response.headers["Retry-After"]) == (429, "7")
    assert await response.json() == {
        "header": {"isSuccessful": False, "resultCode": -1030, "resultMessage": "Too many requests"}
    }
    assert await count(client, "sms") == 0
    query = await client.get(
        SMS_QUERY_PATH, params={"recipientGroupingKey": "ntc_1:a"}, headers=AUTH
    )
    assert (await query.json())["body"]["totalCount"] == 0


async def test_when_rate_limit_rate_is_1__then_alimtalk_gets_429_volume_exceeded(
    make_client: ClientFactory,
) -> None:
    client = await make_client(rate_limit_rate=1.0, retry_after_s=0)

    response = await client.post(KAKAO_PATH, json=alimtalk(), headers=AUTH)

    assert (response.status, response.headers["Retry-After"]) == (429, "0")
    assert await response.json() == {
        "header": {"isSuccessful": False, "resultCode": -1030, "resultMessage": "volume exceeded"}
    }
    assert await count(client, "kakao") == 0


async def test_when_faults_are_certain__then_slack_queries_and_health_are_untouched(
    make_client: ClientFactory,
) -> None:
    client = await make_client(rate_limit_rate=1.0, timeout_rate=1.0, hang_ms=60_000)
    slack = {"channel": "C1", "text": "hi"}
    bearer = {"Authorization": "Bearer xoxb-sandbox-token"}
    key = {"recipientGroupingKey": "k"}

    answers = [
        await client.post("/slack/api/chat.postMessage", json=slack, headers=bearer),
        await client.get(SMS_QUERY_PATH, params=key, headers=AUTH, timeout=IMPATIENT),
        await client.get(KAKAO_PATH, params=key, headers=AUTH, timeout=IMPATIENT),
        await client.get("/_sandbox/config", timeout=IMPATIENT),
        await client.get("/healthz", timeout=IMPATIENT),
    ]

    assert [answer.status for answer in answers] == [200] * 5
    assert (await answers[0].json())["ok"] is True


async def test_when_error_and_rate_limit_rates_are_1__then_the_500_comes_first(
    make_client: ClientFactory,
) -> None:
    client = await make_client(error_rate=1.0, rate_limit_rate=1.0)

    sms_answer = await client.post(SMS_PATH, json=sms(), headers=AUTH)
    kakao_answer = await client.post(KAKAO_PATH, json=alimtalk(), headers=AUTH)

    assert (sms_answer.status, kakao_answer.status) == (500, 500)
    assert "Retry-After" not in sms_answer.headers


async def test_when_seeded_alike__then_two_sandboxes_inject_the_same_faults(
    make_client: ClientFactory,
) -> None:
    settings = {"error_rate": 0.2, "rate_limit_rate": 0.3, "timeout_rate": 0.3, "hang_ms": 0}

    async def statuses(client: TestClient[Any, Any]) -> list[int]:
        return [(await client.post(SMS_PATH, json=sms(), headers=AUTH)).status for _ in range(30)]

    first = await statuses(await make_client(seed=5, **settings))
    second = await statuses(await make_client(seed=5, **settings))

    assert first == second
    assert {500, 429, 200} <= set(first)


# --- accepted, answered late ----------------------------------------------------------------


async def test_when_an_sms_call_hangs__then_the_client_times_out_yet_the_message_was_taken(
    make_client: ClientFactory,
) -> None:
    client = await make_client(timeout_rate=1.0, hang_ms=300)

    with pytest.raises(TimeoutError):
        await client.post(SMS_PATH, json=sms("ntc_1:late"), headers=AUTH, timeout=IMPATIENT)

    listing = await (await client.get("/_sandbox/sms/messages")).json()
    assert [m["grouping_key"] for m in listing["messages"]] == ["ntc_1:late"]
    query = await client.get(
        SMS_QUERY_PATH, params={"recipientGroupingKey": "ntc_1:late"}, headers=AUTH
    )
    [found] = (await query.json())["body"]["data"]
    assert (found["recipientNo"], found["msgStatus"]) == ("01012345678", "3")
    assert found["requestId"] == listing["messages"][0]["request_id"]


async def test_when_an_alimtalk_call_hangs__then_the_client_times_out_yet_it_was_taken(
    make_client: ClientFactory,
) -> None:
    client = await make_client(timeout_rate=1.0, hang_ms=300)

    with pytest.raises(TimeoutError):
        await client.post(KAKAO_PATH, json=alimtalk("ntc_1:late"), headers=AUTH, timeout=IMPATIENT)

    assert await count(client, "kakao") == 1
    query = await client.get(
        KAKAO_PATH, params={"recipientGroupingKey": "ntc_1:late"}, headers=AUTH
    )
    result = (await query.json())["messageSearchResultResponse"]
    assert result["totalCount"] == 1
    assert result["messages"][0]["messageStatus"] == "COMPLETED"


async def test_when_a_call_hangs_and_the_client_waits__then_the_usual_answer_comes_after_hang_ms(
    make_client: ClientFactory,
) -> None:
    client = await make_client(timeout_rate=1.0, hang_ms=150)
    started = time.monotonic()

    response = await client.post(SMS_PATH, json=sms(), headers=AUTH)

    assert time.monotonic() - started >= 0.15
    payload = await response.json()
    assert (response.status, payload["header"]["isSuccessful"]) == (200, True)
    assert payload["body"]["data"]["sendResultList"][0]["resultCode"] == 0


async def test_when_a_hanging_call_is_refused__then_it_is_answered_at_once(
    make_client: ClientFactory,
) -> None:
    client = await make_client(timeout_rate=1.0, hang_ms=60_000)
    unregistered = sms() | {"sendNo": "0299999999"}

    response = await client.post(SMS_PATH, json=unregistered, headers=AUTH, timeout=IMPATIENT)

    assert (await response.json())["header"]["resultCode"] == -2000
    assert await count(client, "sms") == 0


async def test_when_the_sandbox_shuts_down_during_a_hang__then_it_does_not_wait_it_out() -> None:
    server = TestServer(init_app(config(timeout_rate=1.0, hang_ms=600_000)))
    await server.start_server()
    async with aiohttp.ClientSession() as session:

        async def taken() -> None:
            while True:
                async with session.get(server.make_url("/_sandbox/sms/messages")) as listing:
                    if (await listing.json())["count"]:
                        return
                await asyncio.sleep(0.01)

        held = asyncio.create_task(
            session.post(server.make_url(SMS_PATH), json=sms(), headers=AUTH)
        )
        await asyncio.wait_for(taken(), timeout=5)
        started = time.monotonic()

        await server.close()

        assert time.monotonic() - started < 5
        async with await asyncio.wait_for(held, timeout=5) as answer:
            assert answer.status == 200  # the held call is answered as accepted
