"""The intake API in-process, against the real MongoDB-wire server and RabbitMQ."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from pymongo import monitoring

from alimi import api_keys, counters, leases, phone, topology
from alimi.bus import Bus
from alimi.messages import DeliveryBatch, Recipient
from alimi.store import Store
from alimi_intake.app import init_app
from alimi_intake.settings import IntakeSettings
from support import follow_job, imported, seed_receipts, statuses_of, take_batches

PROBLEM = "application/problem+json"

INCIDENT: dict[str, Any] = {
    "title": "회원 정보 유출",
    "severity": "high",
    "discovered_at": "2026-11-28T09:00:00+09:00",
    "contact": "고객센터 1599-0000",
    "notice": {"body": "이름과 전화번호가 유출되었습니다. #{status_url}"},
    "audience": {"filter": {"tags_any": ["breach"]}},
}


@pytest.fixture
async def client(
    intake_settings: Callable[..., IntakeSettings], store: Store, bus: Bus
) -> AsyncIterator[TestClient[Any, Any]]:
    settings = intake_settings()
    operator, _ = await api_keys.create(
        store, name="operator", scopes=["subjects:write", "incidents:write", "incidents:read"]
    )
    async with TestClient(
        TestServer(init_app(settings)), headers={"Authorization": f"Bearer {operator}"}
    ) as c:
        yield c


async def _key(store: Store, *scopes: str, **kw: Any) -> dict[str, str]:
    token, _ = await api_keys.create(store, name="test", scopes=list(scopes), **kw)
    return {"Authorization": f"Bearer {token}"}


async def _collections(store: Store) -> dict[str, int]:
    return {
        name: await store[name].count_documents({})
        for name in ("incidents", "notices", "outbox", "subjects")
    }


async def test_when_subjects_are_posted_as_json__then_they_are_upserted_by_external_id(
    client: TestClient[Any, Any], store: Store
) -> None:
    rows = [
        {"external_id": "c1", "name": "김민준", "phone": "010-1234-5678", "tags": ["breach"]},
        {"external_id": "c2", "name": "Jane", "phone": "+821098765432", "locale": "en"},
    ]
    resp = await client.post("/v1/subjects", json=rows)
    assert resp.status == 200, await resp.text()
    assert await resp.json() == {"received": 2, "inserted": 2, "updated": 0}
    rows[0]["name"] = "김민준2"
    resp = await client.post("/v1/subjects", json=rows[:1])
    assert await resp.json() == {"received": 1, "inserted": 0, "updated": 1}
    doc = await store.subjects.find_one({"_id": "c1"})
    assert doc is not None
    assert doc["name"] == "김민준2"
    assert "phone" not in doc  # stored only encrypted, hashed and masked
    keyring = IntakeSettings().phone_keyring  # the client's: the development default
    assert phone.unseal(keyring, "c1", doc["phone_enc"]) == "+821012345678"
    assert doc["phone_masked"] == "+82******5678"
    assert len(doc["phone_hash"]) == 64


async def test_when_subjects_are_posted_as_ndjson__then_each_line_is_a_subject(
    client: TestClient[Any, Any], store: Store
) -> None:
    body = "\n".join(
        json.dumps({"external_id": f"n{i}", "phone": f"+8210000000{i:02d}"}) for i in range(5)
    )
    resp = await client.post(
        "/v1/subjects", data=body, headers={"Content-Type": "application/x-ndjson"}
    )
    assert resp.status == 200, await resp.text()
    assert await store.subjects.count_documents({}) == 5


async def test_when_one_subject_has_a_malformed_phone__then_422_names_it_and_nothing_is_written(
    client: TestClient[Any, Any], store: Store
) -> None:
    rows = [
        {"external_id": "ok1", "phone": "010-1234-5678"},
        {"external_id": "bad1", "phone": "12-34"},
        {"external_id": "bad 2", "phone": "010-1234-5679"},
    ]
    resp = await client.post("/v1/subjects", json=rows)
    assert resp.status == 422
    assert resp.content_type == PROBLEM
    problem = await resp.json()
    fields = [e["field"] for e in problem["errors"]]
    assert fields == ["[1].phone", "[2].external_id"]
    assert await store.subjects.count_documents({}) == 0


async def test_when_one_subject_has_a_landline__then_422_names_it_says_why_and_nothing_is_written(
    client: TestClient[Any, Any], store: Store
) -> None:
    rows = [
        {"external_id": "ok1", "phone": "010-1234-5678"},
        {"external_id": "office", "phone": "+82-2-123-4567"},
    ]
    resp = await client.post("/v1/subjects", json=rows)
    assert resp.status == 422
    assert resp.content_type == PROBLEM
    [error] = (await resp.json())["errors"]
    assert error["field"] == "[1].phone"
    assert "a landline in KR, which cannot receive text or KakaoTalk messages" in error["message"]
    assert await store.subjects.count_documents({}) == 0


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        (b"{not json", 400, None),
        (b"", 400, None),
        (json.dumps({**INCIDENT, "severity": "apocalyptic"}).encode(), 422, "severity"),
        (json.dumps({k: v for k, v in INCIDENT.items() if k != "title"}).encode(), 422, "title"),
        (
            json.dumps({**INCIDENT, "discovered_at": "2026-11-28T09:00:00"}).encode(),
            422,
            "discovered_at",
        ),
        (
            json.dumps({**INCIDENT, "notice": {"body": "#{ssn} leaked"}}).encode(),
            422,
            "notice.body",
        ),
        (json.dumps({**INCIDENT, "audience": {}}).encode(), 422, "audience"),
        # The first-notice template names the contact desk: an incident without one is refused.
        (json.dumps({**INCIDENT, "contact": ""}).encode(), 422, "contact"),
        (
            json.dumps({**INCIDENT, "notice": {"body": "x", "template": "free_text"}}).encode(),
            422,
            "notice.template",
        ),
        (
            json.dumps(
                {**INCIDENT, "notice": {"body": "x", "translations": {"ja": {"body": "y"}}}}
            ).encode(),
            422,
            "notice.translations.ja",
        ),
        (
            json.dumps(
                {**INCIDENT, "audience": {"filter": {"attributes": {"$where": "1"}}}}
            ).encode(),
            422,
            "audience.filter.attributes.$where.[key]",
        ),
    ],
)
async def test_when_an_incident_is_invalid__then_a_problem_names_it_and_nothing_is_written(
    client: TestClient[Any, Any], store: Store, body: bytes, status: int, field: str | None
) -> None:
    resp = await client.post(
        "/v1/incidents", data=body, headers={"Content-Type": "application/json"}
    )
    assert resp.status == status, await resp.text()
    assert resp.content_type == PROBLEM
    problem = await resp.json()
    assert problem["status"] == status
    assert problem["title"]
    if field is not None:
        assert field in [e["field"] for e in problem["errors"]], problem
    assert await _collections(store) == {"incidents": 0, "notices": 0, "outbox": 0, "subjects": 0}


async def test_when_an_incident_is_created__then_its_notice_waits_for_a_second_key(
    client: TestClient[Any, Any], store: Store, bus: Bus
) -> None:
    creator = await _key(store, "incidents:write", "notices:approve")
    resp = await client.post("/v1/incidents", json=INCIDENT, headers=creator)
    assert resp.status == 201, await resp.text()
    created = await resp.json()
    assert resp.headers["Location"] == f"/v1/incidents/{created['incident_id']}"
    assert await store.outbox.count_documents({}) == 0  # nothing announced yet
    approve = f"/v1/notices/{created['notice_id']}/approve"

    without_scope = await client.post(approve)  # the operator key cannot approve at all
    assert without_scope.status == 403 and without_scope.content_type == PROBLEM
    own = await client.post(approve, headers=creator)
    assert own.status == 403, await own.text()
    assert "second key" in (await own.json())["detail"]
    assert await store.outbox.count_documents({}) == 0

    second = await client.post(approve, headers=await _key(store, "notices:approve"))
    assert second.status == 200, await second.text()
    assert (await second.json())["state"] == "approved"
    again = await client.post(approve, headers=await _key(store, "notices:approve"))
    assert again.status == 409 and again.content_type == PROBLEM

    channel = await bus.channel(prefetch=1)
    queue = await channel.get_queue(bus.names(topology.SEGMENTER_QUEUE))
    message = None
    for _ in range(100):
        message = await queue.get(fail=False)
        if message is not None:
            break
        await asyncio.sleep(0.05)
    assert message is not None, "no notice.approved event published"
    await message.ack()
    await channel.close()
    event = json.loads(message.body)
    assert event["kind"] == "notice.approved"
    assert event["notice_id"] == created["notice_id"]
    outbox = await store.outbox.find_one({})
    assert outbox is not None and outbox["published"] is True

    resp = await client.get(f"/v1/incidents/{created['incident_id']}")
    view = await resp.json()
    assert view["title"] == INCIDENT["title"]
    assert [n["state"] for n in view["notices"]] == ["approved"]
    actions = [a["action"] async for a in store.audit.find({}).sort("at", 1)]
    assert actions == ["incident.created", "notice.approved"]


async def test_when_a_key_may_approve_its_own_notices__then_one_key_suffices(
    client: TestClient[Any, Any], store: Store
) -> None:
    solo = await _key(store, "incidents:write", "notices:approve", allow_self_approval=True)
    created = await (await client.post("/v1/incidents", json=INCIDENT, headers=solo)).json()
    resp = await client.post(f"/v1/notices/{created['notice_id']}/approve", headers=solo)
    assert resp.status == 200, await resp.text()


async def test_when_a_sending_notice_is_halted__then_it_can_be_resumed_and_both_are_audited(
    client: TestClient[Any, Any], store: Store
) -> None:
    approver = await _key(store, "notices:approve")
    created = await (await client.post("/v1/incidents", json=INCIDENT)).json()
    notice = f"/v1/notices/{created['notice_id']}"
    early = await client.post(f"{notice}/halt", headers=approver)
    assert early.status == 409  # pending approval: nothing to halt
    assert (await client.post(f"{notice}/approve", headers=approver)).status == 200
    halted = await client.post(f"{notice}/halt", headers=approver)
    assert (await halted.json())["state"] == "halted"
    resumed = await client.post(f"{notice}/resume", headers=approver)
    assert (await resumed.json())["state"] == "approved"
    stored = await store.notices.find_one({"_id": created["notice_id"]})
    assert stored is not None and "segmenter" not in stored
    assert await store.outbox.count_documents({}) == 2  # approved, then approved again
    actions = [a["action"] async for a in store.audit.find({}).sort("at", 1)]
    assert actions == ["incident.created", "notice.approved", "notice.halted", "notice.resumed"]


async def test_when_the_incident_does_not_exist__then_404_problem(
    client: TestClient[Any, Any],
) -> None:
    resp = await client.get("/v1/incidents/inc_nope")
    assert resp.status == 404
    assert resp.content_type == PROBLEM


async def test_when_a_notices_dead_letters_are_replayed__then_only_its_batches_go_back(
    client: TestClient[Any, Any], store: Store, bus: Bus
) -> None:
    def batch(notice_id: str, subject: str) -> DeliveryBatch:
        return DeliveryBatch(
            batch_id=f"{notice_id}:sms:00000001:a4",
            notice_id=notice_id,
            incident_id="inc_1",
            channel="sms",
            attempt=4,
            recipients=(Recipient(subject_id=subject, phone="+821055550000"),),
        )

    await store.notices.insert_one({"_id": "ntc_x", "incident_id": "inc_1", "state": "completed"})
    await seed_receipts(
        store,
        "ntc_x",
        [{"subject_id": "s1", "status": "failed", "channel": "sms", "dead_lettered": True}],
    )
    dead = topology.dead_queue(topology.delivery_queue("sms"))
    for b in (batch("ntc_x", "s1"), batch("ntc_other", "s2")):
        await bus.publish(
            topology.DEAD, topology.delivery_queue("sms"), b.to_bytes(), message_id=b.batch_id
        )
    await bus.publish(topology.DEAD, topology.delivery_queue("sms"), b"not json", message_id="bad")

    approver = await _key(store, "notices:approve")
    resp = await client.post("/v1/notices/ntc_x/dead-letters/replay", headers=approver)
    assert resp.headers["Location"].startswith("/v1/replays/rpl_")
    job = await follow_job(client, resp, headers=approver)
    assert (job["state"], job["target"], job["progress"]["done"]) == ("succeeded", "ntc_x", 1)
    assert job["result"]["recipients_by_channel"] == {"sms": 1}
    [audited] = await store.audit.find({"action": "dead_letters.replayed"}).to_list()
    assert audited["details"] == {"batches": 1, "recipients": 1}

    [replayed] = await take_batches(bus, topology.delivery_queue("sms"))
    assert (replayed.batch_id, replayed.attempt) == ("ntc_x:sms:00000001:replay", 1)
    assert (await statuses_of(store, "ntc_x")) == {"s1": "retrying"}
    counts = await counters.of_notice(store, "ntc_x")
    assert counts.by_channel == {"sms": {"retrying": 1}}
    notice = await store.notices.find_one({"_id": "ntc_x"})
    assert notice is not None and notice["state"] == "sending"
    channel = await bus.channel(prefetch=10)
    queue = await channel.get_queue(bus.names(dead))
    left = []
    while (message := await queue.get(fail=False)) is not None:
        left.append(message.message_id)
        await message.ack()
    await channel.close()
    assert sorted(left) == ["bad", "ntc_other:sms:00000001:a4"]

    missing = await client.post("/v1/notices/ntc_nope/dead-letters/replay", headers=approver)
    assert missing.status == 404 and missing.content_type == PROBLEM


PIPA_DISCLOSURE = {
    "leaked_items": ["이름", "전화번호"],
    "when_and_how": "2026년 11월 27일 외부 공격으로 고객 데이터베이스가 유출되었습니다.",
    "what_you_can_do": "낯선 문자의 링크를 누르지 마세요.",
    "countermeasures": "접근을 차단했고, 피해 구제 신청을 받습니다.",
}


async def test_when_a_pipa_notice_misses_items__then_each_missing_item_is_named(
    client: TestClient[Any, Any], store: Store
) -> None:
    incident = {
        **INCIDENT,
        "jurisdictions": ["KR-PIPA", "EU-GDPR"],
        "contact": "",
        "notice": {"body": "유출 안내", "disclosure": {"leaked_items": ["이름"]}},
    }
    resp = await client.post("/v1/incidents", json=incident)
    assert resp.status == 422 and resp.content_type == PROBLEM
    problem = await resp.json()
    assert problem["title"] == "Notice misses legally required items"
    named = {(e["field"], e["message"]) for e in problem["errors"]}
    assert named == {
        ("notice.disclosure.when_and_how", "KR-PIPA requires when and how the leak happened"),
        (
            "notice.disclosure.what_you_can_do",
            "KR-PIPA requires what the person can do to limit the harm",
        ),
        (
            "notice.disclosure.countermeasures",
            "KR-PIPA requires the organisation's countermeasures and remedy",
        ),
        ("contact", "KR-PIPA requires the desk to contact"),
        ("notice.disclosure.when_and_how", "EU-GDPR requires the nature of the breach"),
        ("contact", "EU-GDPR requires the contact point"),
        ("notice.disclosure.likely_consequences", "EU-GDPR requires the likely consequences"),
        ("notice.disclosure.countermeasures", "EU-GDPR requires the measures taken or proposed"),
    }
    assert await _collections(store) == {"incidents": 0, "notices": 0, "outbox": 0, "subjects": 0}


async def test_when_a_pipa_notice_is_complete__then_it_is_accepted_and_shows_its_deadline(
    client: TestClient[Any, Any], store: Store
) -> None:
    incident = {
        **INCIDENT,
        "jurisdictions": ["KR-PIPA"],
        "notice": {"body": "유출 안내", "disclosure": PIPA_DISCLOSURE},
    }
    resp = await client.post("/v1/incidents", json=incident)
    assert resp.status == 201, await resp.text()
    created = await resp.json()
    view = await (await client.get(f"/v1/incidents/{created['incident_id']}")).json()
    assert view["deadline"] == "2026-12-01T00:00:00+00:00"  # discovered 11-28 09:00 KST + 72 h
    expected_left = (datetime.fromisoformat(view["deadline"]) - datetime.now(UTC)).total_seconds()
    assert abs(view["seconds_left"] - expected_left) < 60
    assert (view["people"], view["recipients"], view["notified"], view["notified_share"]) == (
        0,
        0,
        0,
        0.0,
    )
    notice = await store.notices.find_one({"_id": created["notice_id"]})
    assert notice is not None
    body = notice["texts"]["ko"]["body"]
    assert body.startswith("유출 안내\n\n■ 유출된 항목: 이름, 전화번호\n■ 유출 시점과 경위: ")
    assert "■ 회사의 대응 조치와 피해 구제 절차: 접근을 차단했고" in body


async def test_when_a_notice_is_previewed__then_its_audience_and_messages_are_shown(
    client: TestClient[Any, Any], store: Store
) -> None:
    rows = [
        {"external_id": "a", "name": "가", "phone": "010-1111-0001", "tags": ["breach"]},
        {"external_id": "a2", "name": "가2", "phone": "01011110001", "tags": ["breach"]},
        {
            "external_id": "b",
            "phone": "010-1111-0002",
            "kakao_reachable": False,
            "tags": ["breach"],
        },
        {"external_id": "c", "phone": "010-1111-0003", "channels": ["sms"], "tags": ["breach"]},
        {"external_id": "d", "tags": ["breach"]},
        {
            "external_id": "e",
            "phone": "010-1111-0005",
            "channels": ["kakao"],
            "kakao_reachable": False,
            "tags": ["breach"],
        },
        {"external_id": "out", "phone": "010-1111-0009"},
    ]
    assert (await client.post("/v1/subjects", json=rows)).status == 200
    incident = {
        **INCIDENT,
        "notice": {"body": "유출 안내", "translations": {"en": {"body": "Your data leaked."}}},
    }
    created = await (await client.post("/v1/incidents", json=incident)).json()
    resp = await client.post(f"/v1/notices/{created['notice_id']}/preview")
    assert resp.headers["Location"].startswith("/v1/previews/prv_")
    job = await follow_job(client, resp)
    assert (job["kind"], job["state"], job["target"]) == (
        "notice.preview",
        "succeeded",
        created["notice_id"],
    )
    preview = job["result"]
    assert job["progress"]["done"] == 6  # every person of the audience counted
    assert preview["state"] == "pending_approval"
    # people = recipients + merged + skipped: 6 = 3 + 1 + 2
    assert preview["audience"] == {
        "people": 6,
        "recipients": 3,
        "merged": 1,
        "messages_by_channel": {"kakao": 1, "sms": 2},
        "skipped": {"no_phone": 1, "not_on_kakao": 1},
    }
    ko, en = preview["messages"]["ko"], preview["messages"]["en"]
    assert (
        ko["text"].startswith("[회원 정보 유출]\n고객님, 개인정보 유출 사고를")
        and "유출 안내" in ko["text"]
    )
    assert (ko["sms_type"], ko["kakao_template_code"]) == ("LMS", "ALIMI_BREACH_KO")
    assert (
        en["text"].startswith("[회원 정보 유출]\nDear customer,")
        and "Your data leaked." in en["text"]
    )


async def test_when_an_update_is_posted__then_it_is_the_next_notice_and_waits_for_approval(
    client: TestClient[Any, Any], store: Store
) -> None:
    created = await (await client.post("/v1/incidents", json=INCIDENT)).json()
    url = f"/v1/incidents/{created['incident_id']}/notices"
    update = {"status": "identified", "notice": {"body": "원인을 찾았습니다."}}
    first = await client.post(url, json=update)
    assert first.status == 201, await first.text()
    second = await client.post(url, json={"notice": {"body": "조사를 마쳤습니다."}})
    assert [(await r.json())["seq"] for r in (first, second)] == [2, 3]
    notice = await store.notices.find_one({"_id": (await first.json())["notice_id"]})
    assert notice is not None
    assert (notice["state"], notice["template"]) == ("pending_approval", "progress_update")
    first_notice = await store.notices.find_one({"_id": created["notice_id"]})
    assert first_notice is not None
    assert notice["audience"] == first_notice["audience"]  # the first notice's people
    view = await (await client.get(f"/v1/incidents/{created['incident_id']}")).json()
    assert [n["seq"] for n in view["notices"]] == [1, 2, 3]
    assert [n["incident_status"] for n in view["notices"]] == [None, "identified", None]

    unknown = await client.post("/v1/incidents/inc_nope/notices", json=update)
    assert unknown.status == 404 and unknown.content_type == PROBLEM
    bad = await client.post(url, json={"status": "closed", "notice": {"body": "x"}})
    assert bad.status == 422 and "status" in [e["field"] for e in (await bad.json())["errors"]]


async def _status(client: TestClient[Any, Any], created: dict[str, Any]) -> tuple[str, str]:
    """The incident's status as the API and as the public status page show it."""
    view = await (await client.get(f"/v1/incidents/{created['incident_id']}")).json()
    page = await client.get(f"/s/{created['public_id']}", params={"lang": "en"})
    shown = re.search(r'<p class="now">Current status: <strong>([^<]*)</strong>', await page.text())
    assert shown is not None
    return view["status"], shown.group(1)


async def test_when_an_update_asks_for_a_status__then_nothing_changes_until_a_second_key_approves(
    client: TestClient[Any, Any], store: Store
) -> None:
    approver = await _key(store, "notices:approve")
    created = await (await client.post("/v1/incidents", json=INCIDENT)).json()
    url = f"/v1/incidents/{created['incident_id']}/notices"
    resolved = await client.post(url, json={"status": "resolved", "notice": {"body": "끝"}})
    assert resolved.status == 201, await resolved.text()
    update = await resolved.json()
    # Posted by one person: neither the incident nor its public page moves.
    assert await _status(client, created) == ("investigating", "Investigating")
    started = await client.post(f"/v1/notices/{update['notice_id']}/preview")
    preview = (await follow_job(client, started))["result"]
    assert preview["incident_status"] == "resolved"  # the approver sees what approval does

    approved = await client.post(f"/v1/notices/{update['notice_id']}/approve", headers=approver)
    assert approved.status == 200, await approved.text()
    assert await _status(client, created) == ("resolved", "Resolved")
    entry = await store.audit.find_one({"action": "notice.approved"})
    assert entry is not None and entry["details"]["incident_status"] == "resolved"


async def test_when_an_update_is_never_approved__then_its_status_never_applies(
    client: TestClient[Any, Any], store: Store
) -> None:
    created = await (await client.post("/v1/incidents", json=INCIDENT)).json()
    url = f"/v1/incidents/{created['incident_id']}/notices"
    for status in ("identified", "resolved"):
        resp = await client.post(url, json={"status": status, "notice": {"body": "경과"}})
        assert resp.status == 201, await resp.text()
    assert await _status(client, created) == ("investigating", "Investigating")
    incident = await store.incidents.find_one({"_id": created["incident_id"]})
    assert incident is not None and "status_changed_at" not in incident


async def test_when_updates_are_approved_out_of_order__then_the_later_updates_status_stands(
    client: TestClient[Any, Any], store: Store
) -> None:
    approver = await _key(store, "notices:approve")
    created = await (await client.post("/v1/incidents", json=INCIDENT)).json()
    url = f"/v1/incidents/{created['incident_id']}/notices"
    posted = [
        await (await client.post(url, json={"status": s, "notice": {"body": s}})).json()
        for s in ("monitoring", "resolved")
    ]
    for update in reversed(posted):  # the resolution first, then the older update
        resp = await client.post(f"/v1/notices/{update['notice_id']}/approve", headers=approver)
        assert resp.status == 200, await resp.text()
    assert await _status(client, created) == ("resolved", "Resolved")


DEEP = ("[" * 10_000 + "]" * 10_000).encode()  # json.loads would raise RecursionError on it


@pytest.mark.parametrize(
    ("path", "content_type", "field"),
    [
        ("/v1/incidents", "application/json", "body"),
        ("/v1/subjects", "application/json", "body"),
        ("/v1/subjects", "application/x-ndjson", "line 2"),
        ("/v1/incidents/{incident_id}/notices", "application/json", "body"),
    ],
)
async def test_when_json_nests_ten_thousand_arrays__then_400_names_the_limit_and_nothing_changes(
    client: TestClient[Any, Any], store: Store, path: str, content_type: str, field: str
) -> None:
    created = await (await client.post("/v1/incidents", json=INCIDENT)).json()
    before = await _collections(store)
    body = b'{"external_id": "ok"}\n' + DEEP if content_type.endswith("ndjson") else DEEP
    resp = await client.post(
        path.format(**created), data=body, headers={"Content-Type": content_type}
    )
    assert resp.status == 400, await resp.text()
    assert resp.content_type == PROBLEM
    problem = await resp.json()
    assert problem["title"] == "JSON nested too deeply"
    assert problem["errors"] == [
        {"field": field, "message": "arrays and objects are nested more than 32 levels deep"}
    ]
    assert await _collections(store) == before


@pytest.mark.parametrize("ahead", [timedelta(days=3), timedelta(days=365)])
async def test_when_discovered_at_is_in_the_future__then_422_names_it_and_nothing_is_written(
    client: TestClient[Any, Any], store: Store, ahead: timedelta
) -> None:
    incident = {**INCIDENT, "discovered_at": (datetime.now(UTC) + ahead).isoformat()}
    resp = await client.post("/v1/incidents", json=incident)
    assert resp.status == 422, await resp.text()
    problem = await resp.json()
    [error] = problem["errors"]
    assert error["field"] == "discovered_at" and "in the future" in error["message"]
    assert await _collections(store) == {"incidents": 0, "notices": 0, "outbox": 0, "subjects": 0}


async def test_when_the_deadline_passed_before_the_incident_was_posted__then_every_answer_says_so(
    client: TestClient[Any, Any],
) -> None:
    discovered = datetime.now(UTC) - timedelta(days=10)
    incident = {**INCIDENT, "discovered_at": discovered.isoformat()}
    resp = await client.post("/v1/incidents", json=incident)
    assert resp.status == 201, await resp.text()
    created = await resp.json()
    view = await (await client.get(f"/v1/incidents/{created['incident_id']}")).json()
    for answer in (created, view):
        assert answer["overdue"] is True
        assert abs(answer["overdue_by_s"] - 7 * 86_400) < 60  # 10 days less the 72 hours
        assert answer["seconds_left"] == -answer["overdue_by_s"]
        deadline = datetime.fromisoformat(answer["deadline"])  # the store keeps milliseconds
        assert abs(deadline - (discovered + timedelta(hours=72))) < timedelta(seconds=1)
        assert answer["deadline_note"].startswith("Overdue by 7d 0h: the 72-hour legal deadline")


async def test_when_a_pipa_report_is_due_after_the_deadline__then_the_read_back_says_it_is_overdue(
    client: TestClient[Any, Any], store: Store
) -> None:
    discovered = datetime.now(UTC) - timedelta(days=4)
    incident = {
        **INCIDENT,
        "discovered_at": discovered.isoformat(),
        "jurisdictions": ["KR-PIPA"],
        "notice": {"body": "유출 안내", "disclosure": PIPA_DISCLOSURE},
    }
    created = await (await client.post("/v1/incidents", json=incident)).json()
    # As the segmenter leaves it: 1,200 people resolved, none reached yet.
    await store.notices.update_one(
        {"_id": created["notice_id"]},
        {"$set": {"progress.recipients_published": 1200, "state": "sending"}},
    )
    view = await (await client.get(f"/v1/incidents/{created['incident_id']}")).json()
    assert view["regulator_report_due"] == ["KR-PIPA"]
    assert view["regulator_report_note"].startswith(
        "The report to the Personal Information Protection Commission (PIPC) (KR-PIPA)"
        " is overdue by 1d 0h"
    )


@pytest.mark.parametrize("content_type", ["text/plain", None])
@pytest.mark.parametrize(
    "path", ["/v1/incidents", "/v1/subjects", "/v1/incidents/{incident_id}/notices", "/v1/keys"]
)
async def test_when_a_json_route_gets_another_media_type__then_415_and_nothing_changes(
    client: TestClient[Any, Any], store: Store, path: str, content_type: str | None
) -> None:
    created = await (await client.post("/v1/incidents", json=INCIDENT)).json()
    admin = await _key(store, "admin")
    before = (await _collections(store), await store.api_keys.count_documents({}))
    body = {"/v1/subjects": [{"external_id": "c1"}], "/v1/keys": {"name": "k", "scopes": ["admin"]}}
    resp = await client.post(
        path.format(**created),
        data=json.dumps(body.get(path, INCIDENT)).encode(),
        headers={**({"Content-Type": content_type} if content_type else {}), **admin},
        skip_auto_headers=["Content-Type"],
    )
    assert resp.status == 415, await resp.text()
    assert resp.content_type == PROBLEM
    assert (await resp.json())["errors"][0]["field"] == "Content-Type"
    assert (await _collections(store), await store.api_keys.count_documents({})) == before


async def test_when_a_json_phone_is_empty__then_it_means_no_phone_exactly_as_an_empty_csv_cell(
    client: TestClient[Any, Any], store: Store
) -> None:
    resp = await client.post(
        "/v1/subjects",
        json=[{"external_id": "j1", "phone": ""}, {"external_id": "j2", "phone": " "}],
    )
    assert resp.status == 200, await resp.text()
    csv = "external_id,phone\nc1,\n"
    assert (await imported(client, csv, {"Content-Type": "text/csv"}))["imported"] == 1
    contact = {"phone_enc": 1, "phone_hash": 1, "phone_masked": 1, "_id": 0}
    stored = [await store.subjects.find_one({"_id": i}, contact) for i in ("j1", "j2", "c1")]
    assert stored == [{"phone_enc": None, "phone_hash": None, "phone_masked": None}] * 3


@pytest.mark.parametrize(
    ("method", "path", "header"),
    [
        ("POST", "/v1/incidents", "Idempotency-Key"),
        ("GET", "/v1/incidents", "X-Trace"),
        ("GET", "/s/nothing", "Accept-Language"),
    ],
)
async def test_when_a_header_is_100000_characters__then_431_problem_names_the_header(
    client: TestClient[Any, Any], store: Store, method: str, path: str, header: str
) -> None:
    resp = await client.request(method, path, json=INCIDENT, headers={header: "k" * 100_000})
    assert resp.status == 431, await resp.text()
    assert resp.content_type == PROBLEM
    problem = await resp.json()
    assert problem["errors"] == [
        {"field": header, "message": f"{100_000 + len(header)} bytes with its name; at most 8190"}
    ]
    assert await _collections(store) == {"incidents": 0, "notices": 0, "outbox": 0, "subjects": 0}


async def test_when_the_url_is_too_long__then_414_problem(client: TestClient[Any, Any]) -> None:
    resp = await client.get("/v1/incidents", params={"cursor": "x" * 20_000})
    assert resp.status == 414
    assert resp.content_type == PROBLEM


async def test_when_a_replay_of_the_same_notice_is_running__then_a_second_one_is_refused(
    client: TestClient[Any, Any], store: Store, bus: Bus
) -> None:
    await store.notices.insert_one({"_id": "ntc_x", "incident_id": "inc_1", "state": "completed"})
    running = leases.Named(store, "dead-letters:ntc_x", "another-intake", ttl_s=60)
    assert await running.acquire()
    approver = await _key(store, "notices:approve")

    resp = await client.post("/v1/notices/ntc_x/dead-letters/replay", headers=approver)

    assert resp.status == 409 and resp.content_type == "application/problem+json"
    assert "being replayed or discarded by another request" in (await resp.json())["detail"]
    await running.release()
    again = await client.post("/v1/notices/ntc_x/dead-letters/replay", headers=approver)
    assert (await follow_job(client, again, headers=approver))["state"] == "succeeded"


class _Commands(monitoring.CommandListener):
    """The database commands this process sends while it is listening: (name, collection).

    Intake's background loops (the outbox relay, the job sweep) poll their own
    collections at any moment; their commands are not the read-back's and are left out.
    """

    BACKGROUND = frozenset({"outbox", "jobs"})

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []
        self.listening = False

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if self.listening:
            collection = str(event.command.get(event.command_name))
            if collection not in self.BACKGROUND:
                self.seen.append((event.command_name, collection))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


async def test_when_an_incident_is_read_back__then_no_receipt_is_read_whatever_the_notice_size(
    intake_settings: Callable[..., IntakeSettings], store: Store, bus: Bus
) -> None:
    commands = _Commands()
    monitoring.register(commands)  # for the clients created from here on: intake's
    operator, _ = await api_keys.create(
        store, name="operator", scopes=["incidents:write", "incidents:read"]
    )
    async with TestClient(
        TestServer(init_app(intake_settings())), headers={"Authorization": f"Bearer {operator}"}
    ) as client:

        async def read_back(people: int) -> list[tuple[str, str]]:
            created = await (await client.post("/v1/incidents", json=INCIDENT)).json()
            await seed_receipts(
                store,
                created["notice_id"],
                [
                    {"subject_id": f"s{i}", "status": "delivered", "channel": "sms"}
                    for i in range(people)
                ],
                incident_id=created["incident_id"],
            )
            commands.seen.clear()
            commands.listening = True
            resp = await client.get(f"/v1/incidents/{created['incident_id']}")
            commands.listening = False
            assert resp.status == 200, await resp.text()
            view = await resp.json()
            assert view["notices"][0]["counts"] == {"delivered": people}
            return sorted(commands.seen)

        small, large = await read_back(10), await read_back(3000)

    touched = {collection for _, collection in large}
    assert not touched & {"receipts", "attempts", "delivery_reports"}, large
    assert large == small, "the read-back's queries depend on the notice's size"
