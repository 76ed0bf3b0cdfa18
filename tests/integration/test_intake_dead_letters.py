"""GET /v1/notices/{id}/dead-letters: the people a notice gave up on, before a replay."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from alimi import api_keys
from alimi.store import Store
from alimi_intake.app import init_app
from alimi_intake.settings import IntakeSettings
from support import seed_receipts


@pytest.fixture
async def client(
    intake_settings: Callable[..., IntakeSettings], store: Store
) -> AsyncIterator[TestClient[Any, Any]]:
    reader, _ = await api_keys.create(store, name="reader", scopes=["incidents:read"])
    async with TestClient(
        TestServer(init_app(intake_settings())), headers={"Authorization": f"Bearer {reader}"}
    ) as c:
        yield c


async def test_when_a_notice_has_dead_letters__then_they_are_counted_per_channel_with_the_last_errors(  # noqa: E501
    client: TestClient[Any, Any], store: Store
) -> None:
    then = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
    await store.notices.insert_one({"_id": "ntc_x", "incident_id": "inc_1", "state": "completed"})
    busy = {"status": "failed", "dead_lettered": True, "error": "E503 busy"}
    await seed_receipts(
        store,
        "ntc_x",
        [
            {"subject_id": "s1", "channel": "sms", **busy},
            {"subject_id": "s3", "channel": "kakao", **busy, "error": "timeout"},
            {"subject_id": "s4", "channel": "sms", "status": "failed", "error": "E400 bad number"},
            {"subject_id": "s5", "channel": "sms", "status": "delivered"},
        ],
        at=then,
    )
    later = then + timedelta(minutes=1)
    await seed_receipts(store, "ntc_x", [{"subject_id": "s2", "channel": "sms", **busy}], at=later)
    await seed_receipts(store, "ntc_other", [{"subject_id": "s6", "channel": "sms", **busy}])

    resp = await client.get("/v1/notices/ntc_x/dead-letters")

    assert resp.status == 200, await resp.text()
    found = await resp.json()
    assert found["notice_id"] == "ntc_x" and found["state"] == "completed"
    assert (found["total"], found["by_channel"]) == (3, {"sms": 2, "kakao": 1})
    assert found["last_errors"][0] == {
        "channel": "sms",
        "error": "E503 busy",
        "count": 2,
        "last_at": (then + timedelta(minutes=1)).isoformat(),
    }
    assert {e["error"] for e in found["last_errors"]} == {"E503 busy", "timeout"}


async def test_when_a_notice_has_none__then_the_counts_are_zero(
    client: TestClient[Any, Any], store: Store
) -> None:
    await store.notices.insert_one({"_id": "ntc_y", "incident_id": "inc_1", "state": "sending"})
    found = await (await client.get("/v1/notices/ntc_y/dead-letters")).json()
    assert (found["total"], found["by_channel"], found["last_errors"]) == (0, {}, [])


async def test_when_the_notice_does_not_exist__then_404(client: TestClient[Any, Any]) -> None:
    resp = await client.get("/v1/notices/ntc_nope/dead-letters")
    assert resp.status == 404
    assert resp.content_type == "application/problem+json"
