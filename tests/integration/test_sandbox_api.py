"""The sandbox over real HTTP: the NHN-shaped SMS API and the /_sandbox endpoints."""

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient, TestServer

from alimi_sandbox import Behaviour, SandboxConfig, init_app

APP_KEY = "test-app-key"
SECRET = "test-secret"
SENDER = "0215990000"
SMS_PATH = f"/sms/v3.0/appKeys/{APP_KEY}/sender/sms"
MMS_PATH = f"/sms/v3.0/appKeys/{APP_KEY}/sender/mms"
AUTH = {"X-Secret-Key": SECRET}

ClientFactory = Callable[..., Awaitable[TestClient[Any, Any]]]


@pytest.fixture
async def make_client() -> AsyncIterator[ClientFactory]:
    async with AsyncExitStack() as stack:

        async def make(**behaviour: Any) -> TestClient[Any, Any]:
            config = SandboxConfig(
                app_key=APP_KEY,
                secret_key=SECRET,
                sender_numbers=frozenset({SENDER}),
                behaviour=Behaviour(**({"latency_ms": 0} | behaviour)),
                seed=1,
            )
            return await stack.enter_async_context(TestClient(TestServer(init_app(config))))

        yield make


@pytest.fixture
async def client(make_client: ClientFactory) -> TestClient[Any, Any]:
    return await make_client()


def sms(body: str = "안녕하세요", recipients: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    if recipients is None:
        recipients = [{"recipientNo": "01012345678", "recipientGroupingKey": "receipt-1"}]
    return {"body": body, "sendNo": SENDER, "recipientList": recipients}


async def header_of(response: ClientResponse) -> dict[str, Any]:
    return (await response.json())["header"]


async def inbox(client: TestClient[Any, Any], **query: str) -> dict[str, Any]:
    response = await client.get("/_sandbox/sms/messages", params=query)
    assert response.status == 200
    return await response.json()


async def test_when_an_sms_is_valid__then_the_response_has_the_nhn_shape(
    client: TestClient[Any, Any],
) -> None:
    response = await client.post(SMS_PATH, json=sms(), headers=AUTH)

    assert response.status == 200
    payload = await response.json()
    assert payload["header"] == {
        "isSuccessful": True,
        "resultCode": 0,
        "resultMessage": "SUCCESS",
    }
    data = payload["body"]["data"]
    assert data["requestId"]
    assert data["statusCode"] == "2"
    assert data["sendResultList"] == [
        {
            "recipientNo": "01012345678",
            "resultCode": 0,
            "resultMessage": "SUCCESS",
            "recipientSeq": 1,
            "recipientGroupingKey": "receipt-1",
        }
    ]


async def test_when_an_sms_is_accepted__then_the_inbox_records_it(
    client: TestClient[Any, Any],
) -> None:
    response = await client.post(SMS_PATH, json=sms(), headers=AUTH)
    request_id = (await response.json())["body"]["data"]["requestId"]

    listing = await inbox(client)

    assert listing["count"] == 1
    [message] = listing["messages"]
    received_at = message.pop("received_at")
    assert received_at.endswith("+00:00")
    assert message == {
        "message_id": f"{request_id}-1",
        "request_id": request_id,
        "type": "SMS",
        "recipient_no": "01012345678",
        "country_code": "82",
        "grouping_key": "receipt-1",
        "sender_no": SENDER,
        "title": None,
        "body": "안녕하세요",
    }


async def test_when_an_lms_is_accepted__then_it_is_recorded_with_its_title(
    client: TestClient[Any, Any],
) -> None:
    body = sms(body="가" * 1000) | {"title": "가" * 20}
    response = await client.post(MMS_PATH, json=body, headers=AUTH)

    assert (await header_of(response))["isSuccessful"] is True
    [message] = (await inbox(client))["messages"]
    assert (message["type"], message["title"]) == ("LMS", "가" * 20)


async def test_when_requests_are_accepted__then_each_gets_a_unique_request_id(
    client: TestClient[Any, Any],
) -> None:
    ids = set()
    for _ in range(20):
        response = await client.post(SMS_PATH, json=sms(), headers=AUTH)
        ids.add((await response.json())["body"]["data"]["requestId"])
    assert len(ids) == 20


@pytest.mark.parametrize(("hangul", "result_code"), [(45, 0), (46, -2001)])
async def test_when_an_sms_body_is_hangul__then_90_bytes_is_the_limit(
    client: TestClient[Any, Any], hangul: int, result_code: int
) -> None:
    response = await client.post(SMS_PATH, json=sms(body="가" * hangul), headers=AUTH)

    assert response.status == 200
    assert (await header_of(response))["resultCode"] == result_code


async def test_when_an_lms_title_is_over_40_bytes__then_2002_and_nothing_recorded(
    client: TestClient[Any, Any],
) -> None:
    body = sms() | {"title": "가" * 21}
    response = await client.post(MMS_PATH, json=body, headers=AUTH)

    assert response.status == 200
    assert await header_of(response) == {
        "isSuccessful": False,
        "resultCode": -2002,
        "resultMessage": "LMS title must be 1-40 bytes in EUC-KR (got 42)",
    }
    assert (await inbox(client))["count"] == 0


async def test_when_text_has_an_emoji__then_2004(client: TestClient[Any, Any]) -> None:
    response = await client.post(SMS_PATH, json=sms(body="알림 😀"), headers=AUTH)
    assert (await header_of(response))["resultCode"] == -2004


async def test_when_the_sender_is_unregistered__then_2000(client: TestClient[Any, Any]) -> None:
    body = sms() | {"sendNo": "0299999999"}
    response = await client.post(SMS_PATH, json=body, headers=AUTH)

    assert response.status == 200
    assert await header_of(response) == {
        "isSuccessful": False,
        "resultCode": -2000,
        "resultMessage": "Unregistered sender number",
    }


async def test_when_there_are_no_recipients__then_2003(client: TestClient[Any, Any]) -> None:
    response = await client.post(SMS_PATH, json=sms(recipients=[]), headers=AUTH)
    assert (await header_of(response))["resultCode"] == -2003


async def test_when_one_recipient_number_is_implausible__then_only_it_fails(
    client: TestClient[Any, Any],
) -> None:
    recipients = [
        {"recipientNo": "01011111111"},
        {"recipientNo": "12-34", "recipientGroupingKey": "bad"},
        {"recipientNo": "+821022222222", "countryCode": "82"},
    ]
    response = await client.post(SMS_PATH, json=sms(recipients=recipients), headers=AUTH)

    results = (await response.json())["body"]["data"]["sendResultList"]
    assert [(r["recipientSeq"], r["resultCode"]) for r in results] == [(1, 0), (2, -2005), (3, 0)]
    assert results[1]["resultMessage"] == "Invalid recipient number"
    listing = await inbox(client)
    assert [m["message_id"].rsplit("-", 1)[1] for m in listing["messages"]] == ["1", "3"]


@pytest.mark.parametrize("headers", [{"X-Secret-Key": "wrong"}, {}])
async def test_when_the_secret_is_wrong_or_missing__then_401(
    client: TestClient[Any, Any], headers: dict[str, str]
) -> None:
    response = await client.post(SMS_PATH, json=sms(), headers=headers)

    assert response.status == 401
    assert await response.json() == {
        "header": {
            "isSuccessful": False,
            "resultCode": -1000,
            "resultMessage": "Invalid secret key",
        }
    }
    assert (await inbox(client))["count"] == 0


async def test_when_the_app_key_is_unknown__then_401_with_1001(
    client: TestClient[Any, Any],
) -> None:
    response = await client.post("/sms/v3.0/appKeys/other/sender/sms", json=sms(), headers=AUTH)

    assert response.status == 401
    assert (await header_of(response))["resultCode"] == -1001


@pytest.mark.parametrize("data", [b"{not json", b"", b"\xff\xfe"])
async def test_when_the_body_is_not_json__then_400_with_1(
    client: TestClient[Any, Any], data: bytes
) -> None:
    response = await client.post(
        SMS_PATH, data=data, headers=AUTH | {"Content-Type": "application/json"}
    )

    assert response.status == 400
    header = await header_of(response)
    assert (header["isSuccessful"], header["resultCode"]) == (False, -1)


async def test_when_error_rate_is_1__then_500_and_nothing_recorded(
    make_client: ClientFactory,
) -> None:
    client = await make_client(error_rate=1.0)

    response = await client.post(SMS_PATH, json=sms(), headers=AUTH)

    assert response.status == 500
    assert await response.json() == {
        "header": {
            "isSuccessful": False,
            "resultCode": -9999,
            "resultMessage": "Internal error (simulated)",
        }
    }
    assert (await inbox(client))["count"] == 0


async def test_when_error_rate_is_raised_at_run_time__then_calls_start_failing(
    client: TestClient[Any, Any],
) -> None:
    response = await client.put("/_sandbox/config", json={"error_rate": 1})
    assert response.status == 200
    assert await response.json() == {
        "latency_ms": 0,
        "latency_jitter_ms": 0,
        "error_rate": 1,
        "rate_limit_rate": 0,
        "retry_after_s": 1,
        "timeout_rate": 0,
        "hang_ms": 30000,
        "sms_undelivered_suffixes": "",
        "kakao_not_user_suffixes": "",
        "kakao_uncertain_suffixes": "",
        "kakao_undelivered_suffixes": "",
        "kakao_volume_limit": 0,
    }

    assert (await client.post(SMS_PATH, json=sms(), headers=AUTH)).status == 500
    assert (await client.get("/_sandbox/config")).status == 200


async def test_when_latency_is_set__then_api_calls_take_at_least_that_long(
    make_client: ClientFactory,
) -> None:
    client = await make_client(latency_ms=50)
    started = time.monotonic()

    await client.post(SMS_PATH, json=sms(), headers=AUTH)

    assert time.monotonic() - started >= 0.05


async def test_when_inbox_is_filtered_by_recipient__then_only_their_messages_show(
    client: TestClient[Any, Any],
) -> None:
    recipients = [{"recipientNo": "01011111111"}, {"recipientNo": "+821022222222"}]
    await client.post(SMS_PATH, json=sms(recipients=recipients), headers=AUTH)
    await client.post(SMS_PATH, json=sms(recipients=recipients), headers=AUTH)

    listing = await inbox(client, recipient_no="+821022222222")

    assert listing["count"] == 2
    assert {m["recipient_no"] for m in listing["messages"]} == {"+821022222222"}


async def test_when_inbox_is_limited__then_count_still_covers_every_match(
    client: TestClient[Any, Any],
) -> None:
    recipients = [{"recipientNo": f"010{i:08d}"} for i in range(5)]
    await client.post(SMS_PATH, json=sms(recipients=recipients), headers=AUTH)

    listing = await inbox(client, limit="2")

    assert listing["count"] == 5
    assert [m["recipient_no"] for m in listing["messages"]] == ["01000000000", "01000000001"]


async def test_when_inbox_limit_is_not_a_number__then_400_problem(
    client: TestClient[Any, Any],
) -> None:
    response = await client.get("/_sandbox/sms/messages", params={"limit": "-1"})
    assert response.status == 400
    assert response.content_type == "application/problem+json"


async def test_when_inbox_is_cleared__then_it_is_empty(client: TestClient[Any, Any]) -> None:
    await client.post(SMS_PATH, json=sms(), headers=AUTH)

    response = await client.delete("/_sandbox/sms/messages")

    assert response.status == 200
    assert await response.json() == {"deleted": 1}
    assert await inbox(client) == {"messages": [], "count": 0}


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"error_rate": 1.5}, "error_rate"),
        ({"latency_ms": -1}, "latency_ms"),
        ({"latency_jitter_ms": "5"}, "latency_jitter_ms"),
        ({"seed": 3}, "seed"),
        ({"kakao_not_user_suffixes": "9999-7000"}, "kakao_not_user_suffixes"),
        ({"sms_undelivered_suffixes": 12}, "sms_undelivered_suffixes"),
        ({"kakao_volume_limit": -1}, "kakao_volume_limit"),
        ({"rate_limit_rate": 2}, "rate_limit_rate"),
        ({"retry_after_s": 0.5}, "retry_after_s"),
        ({"retry_after_s": 3601}, "retry_after_s"),
        ({"timeout_rate": "often"}, "timeout_rate"),
        ({"hang_ms": 600_001}, "hang_ms"),
    ],
)
async def test_when_config_values_are_invalid__then_422_problem_names_the_field(
    client: TestClient[Any, Any], changes: dict[str, Any], field: str
) -> None:
    response = await client.put("/_sandbox/config", json=changes)

    assert response.status == 422
    assert response.content_type == "application/problem+json"
    problem = await response.json()
    assert problem["field"] == field
    assert field in problem["detail"]
    assert (await (await client.get("/_sandbox/config")).json())["error_rate"] == 0


async def test_when_config_body_is_not_an_object__then_400_problem(
    client: TestClient[Any, Any],
) -> None:
    response = await client.put("/_sandbox/config", json=[1])
    assert response.status == 400
    assert response.content_type == "application/problem+json"


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
async def test_when_probed__then_healthy(client: TestClient[Any, Any], path: str) -> None:
    response = await client.get(path)
    assert response.status == 200
    assert await response.json() == {"status": "ok"}
