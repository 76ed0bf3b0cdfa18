"""The incident list the console reads, ``GET /v1/incidents``, and the console's own routes,
through the intake app against the real MongoDB-wire server."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from alimi import api_keys
from alimi.store import Store
from alimi_intake import console, incident_list
from alimi_intake.app import init_app
from alimi_intake.settings import IntakeSettings

PROBLEM = "application/problem+json"
T0 = datetime(2026, 11, 28, 0, 0, tzinfo=UTC)


@pytest.fixture
async def client(
    intake_settings: Callable[..., IntakeSettings], store: Store
) -> AsyncIterator[TestClient[Any, Any]]:
    async with TestClient(TestServer(init_app(intake_settings()))) as c:
        yield c


async def _key(store: Store, *scopes: str) -> dict[str, str]:
    token, _ = await api_keys.create(store, name="console", scopes=list(scopes))
    return {"Authorization": f"Bearer {token}"}


def _incident(n: int, created_at: datetime) -> dict[str, Any]:
    return {
        "_id": f"inc_{n:020x}",
        "public_id": f"public-id-{n:012d}",
        "title": f"사고 {n}",
        "kind": "data_breach",
        "severity": "low",
        "status": "investigating",
        "discovered_at": created_at,
        "deadline": created_at + timedelta(hours=72),
        "created_at": created_at,
    }


@pytest.fixture
async def incidents(store: Store) -> list[str]:
    """Seven incidents, newest first by id: 1, 2 and 3 opened at the same instant."""
    at = {1: T0, 2: T0, 3: T0, 4: T0 - timedelta(hours=1)}
    at |= {n: T0 - timedelta(hours=n) for n in (5, 6, 7)}
    await store.incidents.insert_many([_incident(n, at[n]) for n in range(1, 8)])
    await store.notices.insert_many(
        [{"_id": f"ntc_{k:020x}", "incident_id": f"inc_{3:020x}", "seq": k} for k in (1, 2)]
    )
    # Newest first; a tie on created_at is broken by the id, highest first.
    return [f"inc_{n:020x}" for n in (3, 2, 1, 4, 5, 6, 7)]


async def test_the_list_is_newest_first_in_pages_that_neither_skip_nor_repeat(
    client: TestClient[Any, Any], store: Store, incidents: list[str]
) -> None:
    reader = await _key(store, "incidents:read")
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params = {"limit": "3"} | ({"cursor": cursor} if cursor else {})
        resp = await client.get("/v1/incidents", params=params, headers=reader)
        assert resp.status == 200, await resp.text()
        page = await resp.json()
        pages += 1
        assert len(page["incidents"]) <= 3
        seen += [i["incident_id"] for i in page["incidents"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == incidents
    assert pages == 3


async def test_a_row_has_the_incidents_facts_its_deadline_and_its_notices(
    client: TestClient[Any, Any], store: Store, incidents: list[str]
) -> None:
    resp = await client.get(
        "/v1/incidents", params={"limit": "1"}, headers=await _key(store, "incidents:read")
    )
    page = await resp.json()
    [row] = page["incidents"]
    assert page["next_cursor"] == incidents[0]
    assert row == {
        "incident_id": incidents[0],
        "title": "사고 3",
        "severity": "low",
        "status": "investigating",
        "created_at": "2026-11-28T00:00:00+00:00",
        "deadline": "2026-12-01T00:00:00+00:00",
        "seconds_left": row["seconds_left"],
        "notices": 2,
    }
    expected = (T0 + timedelta(hours=72) - datetime.now(UTC)).total_seconds()
    assert abs(row["seconds_left"] - expected) < 60


async def test_without_a_limit__then_twenty_and_with_no_incidents__then_an_empty_page(
    client: TestClient[Any, Any], store: Store
) -> None:
    headers = await _key(store, "incidents:read")
    resp = await client.get("/v1/incidents", headers=headers)
    assert await resp.json() == {"incidents": [], "next_cursor": None}
    await store.incidents.insert_many(
        [_incident(n, T0 - timedelta(minutes=n)) for n in range(1, 23)]
    )
    page = await (await client.get("/v1/incidents", headers=headers)).json()
    assert len(page["incidents"]) == incident_list.DEFAULT_LIMIT
    assert page["next_cursor"] == f"inc_{20:020x}"


async def test_a_created_incident_is_listed_first(
    client: TestClient[Any, Any], store: Store, incidents: list[str]
) -> None:
    operator = await _key(store, "subjects:write", "incidents:write", "incidents:read")
    resp = await client.post(
        "/v1/subjects", json=[{"external_id": "c1", "phone": "010-1234-5678"}], headers=operator
    )
    assert resp.status == 200
    body = {
        "title": "새 사고",
        "severity": "medium",
        "discovered_at": "2026-11-28T09:00:00+09:00",
        "contact": "고객센터 1599-0000",
        "notice": {"body": "안내"},
        "audience": {"subject_ids": ["c1"]},
    }
    created = await (await client.post("/v1/incidents", json=body, headers=operator)).json()
    page = await (await client.get("/v1/incidents", headers=operator)).json()
    assert page["incidents"][0]["incident_id"] == created["incident_id"]
    assert page["incidents"][0]["notices"] == 1


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "101"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"limit": "-1"}, "limit"),
        ({"limit": "٣"}, "limit"),  # a digit, but not an ASCII one
        ({"cursor": "inc_ffffffffffffffffffff"}, "cursor"),  # names no incident
        ({"cursor": "{'$gt': ''}"}, "cursor"),
        ([("limit", "1"), ("limit", "2")], "limit"),
    ],
)
async def test_a_bad_limit_or_cursor_is_422_naming_it(
    client: TestClient[Any, Any], store: Store, params: Any, field: str
) -> None:
    resp = await client.get(
        "/v1/incidents", params=params, headers=await _key(store, "incidents:read")
    )
    assert resp.status == 422
    assert resp.content_type == PROBLEM
    assert [e["field"] for e in (await resp.json())["errors"]] == [field]


async def test_the_list_needs_a_key_with_incidents_read(
    client: TestClient[Any, Any], store: Store
) -> None:
    assert (await client.get("/v1/incidents")).status == 401
    writer = await _key(store, "incidents:write", "subjects:write")
    assert (await client.get("/v1/incidents", headers=writer)).status == 403
    for scopes in (("incidents:read",), ("admin",)):
        resp = await client.get("/v1/incidents", headers=await _key(store, *scopes))
        assert resp.status == 200


async def test_the_console_page_needs_no_key_holds_no_data_and_allows_only_its_own_script(
    client: TestClient[Any, Any], store: Store, incidents: list[str]
) -> None:
    resp = await client.get("/console")
    assert resp.status == 200
    assert resp.content_type == "text/html"
    page = await resp.text()
    assert "사고" not in page and "inc_" not in page
    csp = resp.headers["Content-Security-Policy"]
    assert csp == console.CONTENT_SECURITY_POLICY
    assert re.match(r"default-src 'none'; script-src 'self'; connect-src 'self'; style-src", csp)
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.headers["Referrer-Policy"] == "no-referrer"
    assert "Set-Cookie" not in resp.headers

    script = await client.get(console.SCRIPT_PATH)
    assert script.status == 200
    assert script.content_type == "text/javascript"
    body = await script.read()
    digest = base64.b64encode(hashlib.sha384(body).digest()).decode()
    assert f'integrity="sha384-{digest}"' in page
    assert script.headers["X-Content-Type-Options"] == "nosniff"
