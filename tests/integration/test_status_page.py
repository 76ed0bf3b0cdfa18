"""The public status page through the intake app, against the real MongoDB-wire server.

Subjects and the incident go in through the API with an operator's key and the
notice is approved with a second key; the page itself is fetched with no key.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from alimi import api_keys
from alimi.bus import Bus
from alimi.store import Store
from alimi_intake.app import init_app
from alimi_intake.settings import IntakeSettings

BASE_URL = "https://status.example.test"
HTML = "text/html"

SUBJECTS = [
    {
        "external_id": "cust-7781",
        "name": "김민준",
        "phone": "010-2345-6789",
        "tags": ["breach"],
    },
    {
        "external_id": "cust-7782",
        "name": "Jane Roe",
        "phone": "+82 10 9876 5432",
        "locale": "en",
        "tags": ["breach"],
    },
]
# Every way the subjects' phones could show up: as imported, E.164, digits, masked.
PHONE_FORMS = [
    "010-2345-6789",
    "+821023456789",
    "01023456789",
    "23456789",
    "2345-6789",
    "+82******6789",
    "+82 10 9876 5432",
    "+821098765432",
    "01098765432",
    "98765432",
    "9876-5432",
    "+82******5432",
]

INCIDENT: dict[str, Any] = {
    "title": "회원 정보 유출",
    "severity": "high",
    "discovered_at": "2026-11-28T09:00:00+09:00",
    "contact": "고객센터 1599-0000",
    "notice": {
        "body": "#{name}님의 이름과 전화번호가 유출되었습니다. "
        "비밀번호를 바꿔 주세요. #{status_url}",
        "translations": {
            "en": {
                "body": "Dear #{name}, your name and phone number leaked. "
                "Please change your password. #{status_url}"
            }
        },
    },
    "audience": {"filter": {"tags_any": ["breach"]}},
}


@pytest.fixture
async def client(
    intake_settings: Callable[..., IntakeSettings], store: Store, bus: Bus
) -> AsyncIterator[TestClient[Any, Any]]:
    """The intake app with no key of its own: the page must answer anyone."""
    settings = intake_settings(public_base_url=BASE_URL)
    async with TestClient(TestServer(init_app(settings))) as c:
        yield c


async def _key(store: Store, name: str, *scopes: str) -> dict[str, str]:
    token, _ = await api_keys.create(store, name=name, scopes=list(scopes))
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def incident(client: TestClient[Any, Any], store: Store) -> dict[str, Any]:
    """Two subjects and an incident whose first notice a second key approved."""
    operator = await _key(store, "operator", "subjects:write", "incidents:write")
    approver = await _key(store, "approver", "notices:approve")
    resp = await client.post("/v1/subjects", json=SUBJECTS, headers=operator)
    assert resp.status == 200, await resp.text()
    resp = await client.post("/v1/incidents", json=INCIDENT, headers=operator)
    assert resp.status == 201, await resp.text()
    created: dict[str, Any] = await resp.json()
    resp = await client.post(f"/v1/notices/{created['notice_id']}/approve", headers=approver)
    assert resp.status == 200, await resp.text()
    return created


def _path(created: dict[str, Any]) -> str:
    return f"/s/{created['public_id']}"


async def test_when_the_page_is_asked_in_english__then_it_is_english_with_the_translation(
    client: TestClient[Any, Any], incident: dict[str, Any]
) -> None:
    resp = await client.get(_path(incident), params={"lang": "en"})
    assert resp.status == 200
    assert resp.content_type == HTML and resp.charset == "utf-8"
    assert resp.headers["Content-Language"] == "en"
    page = await resp.text()
    assert '<html lang="en">' in page
    assert "Investigating" in page
    assert "Dear customer, your name and phone number leaked." in page
    assert f"{BASE_URL}/s/{incident['public_id']}" in page
    assert "고객센터 1599-0000" in page
    assert "#{" not in page


async def test_when_the_browser_prefers_english__then_the_page_is_english(
    client: TestClient[Any, Any], incident: dict[str, Any]
) -> None:
    resp = await client.get(_path(incident), headers={"Accept-Language": "en-US,en;q=0.9"})
    assert resp.headers["Content-Language"] == "en"
    assert "What you should do" in await resp.text()


async def test_when_nothing_says_which_language__then_the_page_is_korean(
    client: TestClient[Any, Any], incident: dict[str, Any]
) -> None:
    resp = await client.get(_path(incident), headers={"Accept-Language": "fr-FR, de;q=0.8"})
    assert resp.status == 200
    assert resp.headers["Content-Language"] == "ko"
    page = await resp.text()
    assert '<html lang="ko">' in page
    assert "조사 중" in page
    assert "고객님의 이름과 전화번호가 유출되었습니다." in page
    assert '<a href="?lang=en" hreflang="en" lang="en">English</a>' in page


async def test_the_page_carries_cache_and_security_headers(
    client: TestClient[Any, Any], incident: dict[str, Any]
) -> None:
    resp = await client.get(_path(incident))
    assert resp.headers["Cache-Control"] == "public, max-age=60"
    assert resp.headers["Vary"] == "Accept-Language"
    assert re.fullmatch(r'"[0-9a-f]{32}"', resp.headers["ETag"])
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.headers["Referrer-Policy"] == "no-referrer"
    csp = resp.headers["Content-Security-Policy"]
    assert csp.startswith("default-src 'none'; style-src 'sha256-")
    assert "script-src" not in csp


async def test_when_the_etag_still_matches__then_304_and_when_the_incident_moves__then_a_new_page(
    client: TestClient[Any, Any], incident: dict[str, Any], store: Store
) -> None:
    first = await client.get(_path(incident))
    etag = first.headers["ETag"]
    again = await client.get(_path(incident), headers={"If-None-Match": etag})
    assert again.status == 304
    assert await again.read() == b""
    assert again.headers["ETag"] == etag
    assert again.headers["Cache-Control"] == "public, max-age=60"
    weak = await client.get(_path(incident), headers={"If-None-Match": f'"other", W/{etag}'})
    assert weak.status == 304
    english = await client.get(_path(incident), params={"lang": "en"})
    assert english.headers["ETag"] != etag

    await store.incidents.update_one(
        {"public_id": incident["public_id"]}, {"$set": {"status": "resolved"}}
    )
    moved = await client.get(_path(incident), headers={"If-None-Match": etag})
    assert moved.status == 200
    assert moved.headers["ETag"] != etag
    assert "종결" in await moved.text()


async def test_a_notice_waiting_for_approval_is_not_on_the_page(
    client: TestClient[Any, Any], store: Store
) -> None:
    operator = await _key(store, "operator", "incidents:write")
    unapproved = {**INCIDENT, "notice": {"body": "아직 승인 전인 안내문"}}
    resp = await client.post("/v1/incidents", json=unapproved, headers=operator)
    created = await resp.json()
    page = await (await client.get(_path(created))).text()
    assert "아직 승인 전인 안내문" not in page
    assert "아직 게시된 안내가 없습니다." in page


async def test_the_page_shows_no_subjects_name_phone_or_id(
    client: TestClient[Any, Any], incident: dict[str, Any]
) -> None:
    for lang in ("ko", "en"):
        page = await (await client.get(_path(incident), params={"lang": lang})).text()
        for subject in SUBJECTS:
            assert subject["name"] not in page
            assert subject["external_id"] not in page
        for form in PHONE_FORMS:
            assert form not in page, form
        assert incident["incident_id"] not in page
        assert incident["notice_id"] not in page


@pytest.mark.parametrize("which", ["random", "incident_id", "notice_id", "garbage"])
async def test_an_unknown_page_is_the_same_bilingual_404_whatever_was_asked(
    client: TestClient[Any, Any], incident: dict[str, Any], which: str
) -> None:
    public_id = {
        "random": "AAAAAAAAAAAAAAAAAAAAAA",
        "incident_id": incident["incident_id"],
        "notice_id": incident["notice_id"],
        "garbage": "<script>",
    }[which]
    resp = await client.get(f"/s/{public_id}")
    assert resp.status == 404
    assert resp.content_type == HTML
    assert resp.headers["Cache-Control"] == "no-store"
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    page = await resp.text()
    assert "페이지를 찾을 수 없습니다" in page and "Page not found" in page
    reference = await (await client.get("/s/BBBBBBBBBBBBBBBBBBBBBB")).text()
    assert page == reference


async def test_incidents_are_indexed_by_their_unique_public_id(
    client: TestClient[Any, Any], store: Store
) -> None:
    indexes = await store.incidents.index_information()
    assert indexes["public_id_unique"]["key"] == [("public_id", 1)]
    assert indexes["public_id_unique"]["unique"] is True
