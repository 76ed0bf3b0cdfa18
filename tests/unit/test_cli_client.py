"""The CLI's one API client: retries with one Idempotency-Key, errors as exit codes."""

from __future__ import annotations

import httpx
import pytest

from alimi_cli.client import Api
from alimi_cli.config import Settings
from alimi_cli.errors import ApiError, CliError, Exit

SETTINGS = Settings(url="http://api.test", api_key="ak_test.secret-0000", key_source="--key")


def _api(handler: httpx.MockTransport, slept: list[float]) -> Api:
    return Api(SETTINGS, transport=handler, sleep=slept.append)


def test_a_post_is_retried_after_a_503_with_the_same_idempotency_key() -> None:
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if len(seen) == 1:
            return httpx.Response(503, headers={"Retry-After": "2"})
        return httpx.Response(201, json={"incident_id": "inc_1"})

    slept: list[float] = []
    answer = _api(httpx.MockTransport(handle), slept).post("/v1/incidents", {"title": "t"})
    assert answer == {"incident_id": "inc_1"}
    assert slept == [2.0]
    keys = {r.headers["Idempotency-Key"] for r in seen}
    assert len(keys) == 1 and keys.pop().startswith("cli-")
    assert seen[0].headers["Authorization"] == "Bearer ak_test.secret-0000"
    assert seen[0].headers["Content-Type"] == "application/json"


def test_when_the_api_cannot_be_reached__then_exit_3_after_the_retries() -> None:
    calls = []

    def handle(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        raise httpx.ConnectError("connection refused")

    slept: list[float] = []
    with pytest.raises(CliError) as raised:
        _api(httpx.MockTransport(handle), slept).get("/v1/incidents/inc_1")
    assert raised.value.code == Exit.UNAVAILABLE
    assert "cannot reach the Alimi API at http://api.test" in raised.value.message
    assert (len(calls), slept) == (3, [0.5, 1.0])


def test_a_problem_answer_becomes_an_api_error_with_a_hint_about_the_key() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            403,
            json={"title": "Forbidden", "status": 403, "detail": "lacks 'notices:approve'"},
            headers={"Content-Type": "application/problem+json"},
        )

    with pytest.raises(ApiError) as raised:
        _api(httpx.MockTransport(handle), []).post("/v1/notices/ntc_1/approve")
    assert raised.value.code == Exit.REFUSED
    assert raised.value.lines() == [
        "error: Forbidden (HTTP 403)",
        "  lacks 'notices:approve'",
        "  hint: the request used the key ak_test.… (from --key)",
    ]
    assert "secret" not in "\n".join(raised.value.lines())


def test_an_answer_that_is_not_the_apis_asks_whether_the_url_is_right() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404, text="<html>nginx</html>")

    with pytest.raises(ApiError) as raised:
        _api(httpx.MockTransport(handle), []).get("/v1/incidents/inc_1")
    assert raised.value.problem == {"title": "Not Found", "detail": "<html>nginx</html>"}
    assert "is http://api.test (from default) the Alimi API?" in raised.value.hint


def test_a_204_is_none() -> None:
    api = _api(httpx.MockTransport(lambda request: httpx.Response(204)), [])
    assert api.delete("/v1/keys/k1") is None
