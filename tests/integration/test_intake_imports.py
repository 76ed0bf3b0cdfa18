"""Streamed uploads through the intake API: subject files and lists of people as audiences,
against the real MongoDB-wire server and RabbitMQ."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from alimi import api_keys, partitions, phone, topology
from alimi.bus import Bus
from alimi.store import Store
from alimi_intake import importer
from alimi_intake.app import init_app
from alimi_intake.settings import IntakeSettings
from alimi_segmenter.service import segment_notice
from support import follow_job, imported, take_batches

PROBLEM = "application/problem+json"
CSV = {"Content-Type": "text/csv"}
NDJSON = {"Content-Type": "application/x-ndjson"}
HEADER = "external_id,name,phone,locale,tags,kakao_reachable,channels\n"
COUNTS = ("rows", "imported", "inserted", "updated", "rejected")


async def _client(settings: IntakeSettings, store: Store) -> AsyncIterator[TestClient[Any, Any]]:
    operator, _ = await api_keys.create(
        store, name="operator", scopes=["subjects:write", "incidents:write", "incidents:read"]
    )
    async with TestClient(
        TestServer(init_app(settings)), headers={"Authorization": f"Bearer {operator}"}
    ) as c:
        yield c


@pytest.fixture
async def client(
    intake_settings: Callable[..., IntakeSettings], store: Store, bus: Bus
) -> AsyncIterator[TestClient[Any, Any]]:
    async for c in _client(intake_settings(), store):
        yield c


@pytest.fixture
async def small_limits(
    intake_settings: Callable[..., IntakeSettings], store: Store, bus: Bus
) -> AsyncIterator[TestClient[Any, Any]]:
    """Bodies read whole are limited to 1 MB, streamed uploads to 3 MB."""
    async for c in _client(intake_settings(max_body_mb=1, import_max_mb=3), store):
        yield c


async def _key(store: Store, *scopes: str) -> dict[str, str]:
    token, _ = await api_keys.create(store, name="test", scopes=list(scopes))
    return {"Authorization": f"Bearer {token}"}


MIXED = (
    HEADER
    + "c1,김민준,010-1234-5678,ko,breach|vip,,\n"  # row 2
    + "c2,Jane,+44 7400 123456,en,breach,false,sms\n"  # row 3: a UK mobile
    + "c3,,12-34,,,,\n"  # row 4: not a phone number
    + "c 4,,010-1234-5679,,,,\n"  # row 5: not an external id
    + "\n"  # row 6: blank, skipped
    + "c5,,010-1234-5680,xx_XX,bad tag,maybe,fax\n"  # row 7: four bad fields
    + "c6,,010-1234-5681,ko,breach,,,extra\n"  # row 8: too many values
    + "c7,,010-5970-0000,,,,\n"  # row 9: a number not in use in Korea
    + "c8,,,,,,\n"  # row 10: no phone, fine
)


async def test_when_a_csv_has_good_and_bad_rows__then_the_good_are_imported_and_each_bad_is_named(
    client: TestClient[Any, Any], store: Store
) -> None:
    answer = await client.post("/v1/subjects/import", data=MIXED, headers=CSV)
    job = await follow_job(client, answer)
    assert (job["kind"], job["state"], job["job_id"]) == (
        "subjects.import",
        "succeeded",
        job["target"],
    )
    assert job["progress"] == {"done": 3, "total": 3, **{k: job["result"][k] for k in COUNTS}}
    result = job["result"]
    assert {k: result[k] for k in ("rows", "imported", "inserted", "updated", "rejected")} == {
        "rows": 8,
        "imported": 3,
        "inserted": 3,
        "updated": 0,
        "rejected": 5,
    }
    assert result["import_id"].startswith("imp_") and result["errors_truncated"] is False
    by_row: dict[int, list[str | None]] = {}
    for error in result["errors"]:
        by_row.setdefault(error["row"], []).append(error["field"])
    assert by_row == {
        4: ["phone"],
        5: ["external_id"],
        7: ["locale", "tags.0", "channels.0", "kakao_reachable"],
        8: [None],
        9: ["phone"],
    }
    assert (
        "not a valid phone number in KR"
        in next(e for e in result["errors"] if e["row"] == 9)["message"]
    )

    assert sorted(await store.subjects.distinct("_id")) == ["c1", "c2", "c8"]
    c1 = await store.subjects.find_one({"_id": "c1"})
    assert c1 is not None and "phone" not in c1
    keyring = IntakeSettings().phone_keyring
    assert phone.unseal(keyring, "c1", c1["phone_enc"]) == "+821012345678"
    assert (c1["tags"], c1["channels"], c1["last_import"]["row"]) == (["breach", "vip"], None, 2)
    c2 = await store.subjects.find_one({"_id": "c2"})
    assert c2 is not None and (c2["kakao_reachable"], c2["channels"]) == (False, ["sms"])
    assert phone.unseal(keyring, "c2", c2["phone_enc"]) == "+447400123456"

    audit = await store.audit.find_one({"action": "subjects.imported"})
    assert audit is not None and audit["target"] == result["import_id"]
    assert audit["details"]["rejected"] == 5
    summary = await (await client.get(f"/v1/imports/{result['import_id']}")).json()
    assert (summary["state"], summary["result"]["error_count"]) == ("succeeded", 8)
    assert await store.import_chunks.count_documents({}) == 0
    page = await (await client.get(f"/v1/imports/{result['import_id']}/errors/1")).json()
    assert page["errors"] == result["errors"]
    assert (await client.get(f"/v1/imports/{result['import_id']}/errors/2")).status == 404


async def test_when_the_same_file_is_imported_again__then_nothing_new_is_created(
    client: TestClient[Any, Any], store: Store
) -> None:
    first = await imported(client, MIXED, CSV)
    second = await imported(client, MIXED, CSV)
    assert (second["inserted"], second["updated"], second["rejected"]) == (0, 3, 5)
    assert second["import_id"] != first["import_id"]
    assert await store.subjects.count_documents({}) == 3


async def test_when_an_external_id_repeats__then_the_first_row_wins_and_the_others_are_named(
    client: TestClient[Any, Any], store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(importer, "CHUNK_ROWS", 2)  # repeats within and across chunks
    rows = ["c1,first", "c2,x", "c1,second", "c3,y", "c4,z", "c1,third", "c3,again"]
    result = await imported(client, "external_id,name\n" + "\n".join(rows), CSV)
    assert (result["imported"], result["rejected"]) == (4, 3)
    assert [(e["row"], e["field"], e["message"]) for e in result["errors"]] == [
        (4, "external_id", "repeats row 2, which is imported; this row is not"),
        (7, "external_id", "repeats row 2, which is imported; this row is not"),
        (8, "external_id", "repeats row 5, which is imported; this row is not"),
    ]
    c1 = await store.subjects.find_one({"_id": "c1"})
    assert c1 is not None and c1["name"] == "first"


async def test_when_subjects_come_as_ndjson__then_each_line_is_a_row_numbered_from_one(
    client: TestClient[Any, Any], store: Store
) -> None:
    body = "\n".join(
        [
            json.dumps({"external_id": "n1", "phone": "01012345678", "attributes": {"plan": "a"}}),
            "{oops",
            json.dumps({"external_id": "n2", "nickname": "x"}),
            json.dumps({"external_id": "n3"}),
        ]
    )
    result = await imported(client, body, NDJSON)
    assert (result["rows"], result["imported"], result["rejected"]) == (4, 2, 2)
    assert [(e["row"], e["field"]) for e in result["errors"]] == [(2, None), (3, "nickname")]
    n1 = await store.subjects.find_one({"_id": "n1"})
    assert n1 is not None and n1["attributes"] == {"plan": "a"}


# Valid numbers that cannot receive a text or KakaoTalk message, and a mobile for contrast.
NOT_MOBILE = {
    "+82-2-123-4567": "a landline in KR",
    "+44 20 7946 0958": "a landline in GB",
    "080-123-4567": "a toll-free number in KR",
    "1588-1234": "a representative number (UAN) in KR",
    "070-1234-5678": "an internet phone (VoIP) number in KR",
    "050-1234-5678": "a forwarding (personal) number in KR",
}


@pytest.mark.parametrize("kind", ["csv", "ndjson"])
async def test_when_a_file_holds_numbers_that_cannot_receive_messages__then_those_rows_say_why(
    client: TestClient[Any, Any], store: Store, kind: str
) -> None:
    people = [("m1", "010-1234-5678"), *((f"x{i}", n) for i, n in enumerate(NOT_MOBILE))]
    if kind == "csv":
        body = "external_id,phone\n" + "".join(f"{who},{number}\n" for who, number in people)
        first_row = 2  # the header is row 1
    else:
        body = "\n".join(json.dumps({"external_id": who, "phone": n}) for who, n in people)
        first_row = 1
    result = await imported(client, body, CSV if kind == "csv" else NDJSON)
    assert (result["imported"], result["rejected"]) == (1, len(NOT_MOBILE))
    for error, what in zip(result["errors"], NOT_MOBILE.values(), strict=True):
        assert error["field"] == "phone"
        assert what + ", which cannot receive text or KakaoTalk messages" in error["message"]
    assert [e["row"] for e in result["errors"]] == [
        first_row + 1 + i for i in range(len(NOT_MOBILE))
    ]
    assert await store.subjects.distinct("_id") == ["m1"]


DEEP = "[" * 10_000 + "]" * 10_000  # json.loads would raise RecursionError on it


async def test_when_an_ndjson_row_nests_too_deeply__then_that_row_is_rejected_and_the_rest_imported(
    client: TestClient[Any, Any], store: Store
) -> None:
    body = "\n".join([json.dumps({"external_id": "d1"}), DEEP, json.dumps({"external_id": "d2"})])
    result = await imported(client, body, NDJSON)
    assert (result["rows"], result["imported"], result["rejected"]) == (3, 2, 1)
    assert result["errors"] == [
        {
            "row": 2,
            "field": None,
            "message": "arrays and objects are nested more than 32 levels deep",
        }
    ]


@pytest.mark.parametrize(
    ("body", "headers", "status"),
    [
        ("external_id\nc1\n", {"Content-Type": "application/json"}, 415),
        ("external_id\nc1\n", {"Content-Type": "text/csv; charset=latin-1"}, 415),
        ("email,name\nx,y\n", CSV, 422),
        ("", CSV, 422),
        ("external_id\n\n\n", CSV, 422),
        ("\n\n", NDJSON, 422),
    ],
)
async def test_when_the_file_cannot_be_read__then_a_problem_says_why_and_nothing_is_imported(
    client: TestClient[Any, Any], store: Store, body: str, headers: dict[str, str], status: int
) -> None:
    resp = await client.post("/v1/subjects/import", data=body, headers=headers)
    assert resp.status == status, await resp.text()
    assert resp.content_type == PROBLEM
    assert await store.subjects.count_documents({}) == 0
    assert await store.audit.count_documents({}) == 0
    assert await store.jobs.count_documents({}) == 0


async def test_when_the_header_names_an_unknown_column__then_422_names_row_one(
    client: TestClient[Any, Any],
) -> None:
    resp = await client.post("/v1/subjects/import", data="external_id,email\nc1,x\n", headers=CSV)
    problem = await resp.json()
    assert problem["errors"][0]["row"] == 1 and problem["errors"][0]["field"] == "header"
    assert "email" in problem["detail"]


async def test_when_an_upload_is_larger_than_whole_bodies_may_be__then_it_still_streams_in(
    small_limits: TestClient[Any, Any], store: Store
) -> None:
    padding = (" " * 999 + "\n") * 2000  # 2 MB of blank lines: over the 1 MB of whole bodies
    body = f"external_id,phone\n{padding}c1,010-1234-5678\n".encode()
    ndjson = f'{padding}{{"external_id": "c1"}}\n'.encode()
    whole = await small_limits.post("/v1/subjects", data=io.BytesIO(ndjson), headers=NDJSON)
    assert whole.status == 413
    result = await imported(small_limits, io.BytesIO(body), CSV)
    assert (result["rows"], result["errors"]) == (1, [])
    assert await store.subjects.count_documents({}) == 1


async def test_when_an_upload_passes_its_own_limit__then_413(
    small_limits: TestClient[Any, Any], store: Store
) -> None:
    blank = (" " * 1023 + "\n").encode()
    body = b"external_id\n" + blank * 4096  # 4 MB
    declared = await small_limits.post("/v1/subjects/import", data=io.BytesIO(body), headers=CSV)
    assert declared.status == 413 and declared.content_type == PROBLEM
    assert "ALIMI_IMPORT_MAX_MB" in (await declared.json())["detail"]

    async def chunked() -> AsyncIterator[bytes]:  # no Content-Length: found while reading
        yield b"external_id\nc1\n"
        for _ in range(64):
            yield blank * 64

    streamed = await small_limits.post("/v1/subjects/import", data=chunked(), headers=CSV)
    assert streamed.status == 413, await streamed.text()
    assert "Nothing was imported" in (await streamed.json())["detail"]
    # c1 was read and staged before the limit: the staged chunk goes, no job starts.
    assert await store.subjects.count_documents({}) == 0
    assert await store.import_chunks.count_documents({}) == 0
    assert await store.jobs.count_documents({}) == 0


async def test_when_an_import_is_repeated_with_its_idempotency_key__then_the_first_answer_returns(
    client: TestClient[Any, Any], store: Store
) -> None:
    headers = {**CSV, "Idempotency-Key": "import-2026-11-29"}
    first = await client.post("/v1/subjects/import", data=MIXED, headers=headers)
    assert first.status == 202
    second = await client.post("/v1/subjects/import", data=MIXED, headers=headers)
    assert second.headers["Idempotent-Replayed"] == "true"
    assert second.status == 202 and second.headers["Location"] == first.headers["Location"]
    assert await second.json() == await first.json()
    await follow_job(client, first)
    assert await store.jobs.count_documents({}) == 1
    other = await client.post("/v1/subjects/import", data=MIXED + "c9,,,,,,\n", headers=headers)
    assert other.status == 422 and (await other.json())["errors"][0]["field"] == "Idempotency-Key"


# -- lists --------------------------------------------------------------------

INCIDENT: dict[str, Any] = {
    "title": "회원 정보 유출",
    "severity": "high",
    "discovered_at": "2026-11-28T09:00:00+09:00",
    "contact": "고객센터 1599-0000",
    "notice": {"body": "이름과 전화번호가 유출되었습니다. #{status_url}", "channels": ["sms"]},
}


async def _people(client: TestClient[Any, Any], count: int) -> None:
    rows = "".join(f"p{i:03d},,010-2000-{i:04d},,,,\n" for i in range(count))
    assert (await imported(client, HEADER + rows, CSV))["imported"] == count


async def test_when_a_list_is_uploaded__then_known_people_become_members_and_the_rest_are_named(
    client: TestClient[Any, Any], store: Store
) -> None:
    await _people(client, 5)
    body = '"p000"\n{"external_id": "p001"}\n"p001"\n"ghost-1"\n"not an id"\n"p004"\n"ghost-2"\n'
    resp = await client.post("/v1/lists", data=body, headers=NDJSON)
    assert resp.status == 201, await resp.text()
    created = await resp.json()
    list_id = created["list_id"]
    assert resp.headers["Location"] == f"/v1/lists/{list_id}"
    assert {k: created[k] for k in ("rows", "members", "unknown_ids_count", "rejected")} == {
        "rows": 7,
        "members": 3,
        "unknown_ids_count": 2,
        "rejected": 1,
    }
    assert created["unknown_ids"] == ["ghost-1", "ghost-2"]
    assert [(e["row"], e["field"]) for e in created["errors"]] == [(5, "external_id")]
    members = await store.subjects.distinct("_id", {"lists": list_id})
    assert sorted(members) == ["p000", "p001", "p004"]
    shown = await (await client.get(f"/v1/lists/{list_id}")).json()
    assert (shown["state"], shown["members"]) == ("ready", 3)
    assert await store.audit.count_documents({"action": "list.created", "target": list_id}) == 1


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        ("email,external_id\nx,p001\nx,p002\n", CSV),
        (json.dumps(["p001", "p002"]), {"Content-Type": "application/json"}),
    ],
)
async def test_when_a_list_comes_as_csv_or_json__then_it_is_read_the_same(
    client: TestClient[Any, Any], store: Store, body: str, headers: dict[str, str]
) -> None:
    await _people(client, 3)
    resp = await client.post("/v1/lists", data=body, headers=headers)
    assert resp.status == 201, await resp.text()
    assert (await resp.json())["members"] == 2


@pytest.mark.parametrize(
    ("body", "headers", "status"),
    [
        ("[]", {"Content-Type": "application/json"}, 422),
        ('{"ids": ["p001"]}', {"Content-Type": "application/json"}, 422),
        ("[1, 2]", {"Content-Type": "application/json"}, 422),
        ("[", {"Content-Type": "application/json"}, 400),
        (DEEP, {"Content-Type": "application/json"}, 400),
        ("", NDJSON, 422),
        ("p001\n", {"Content-Type": "text/plain"}, 415),
    ],
)
async def test_when_a_list_cannot_be_read__then_a_problem_and_no_usable_list(
    client: TestClient[Any, Any], store: Store, body: str, headers: dict[str, str], status: int
) -> None:
    resp = await client.post("/v1/lists", data=body, headers=headers)
    assert resp.status == status, await resp.text()
    assert await store.lists.count_documents({"state": "ready"}) == 0


async def test_when_an_incident_names_an_unknown_list__then_422_names_the_field(
    client: TestClient[Any, Any], store: Store
) -> None:
    audience = {"list_id": "lst_0123456789abcdef0123"}
    resp = await client.post("/v1/incidents", json={**INCIDENT, "audience": audience})
    assert resp.status == 422 and resp.content_type == PROBLEM
    assert (await resp.json())["errors"] == [
        {"field": "audience.list_id", "message": "no list with this id"}
    ]
    assert await store.incidents.count_documents({}) == 0


async def test_when_a_list_is_the_audience__then_the_segmenter_sends_to_its_members_only(
    client: TestClient[Any, Any], store: Store, bus: Bus
) -> None:
    await _people(client, 20)
    await store.ensure_indexes("receipts", "notices")
    affected = [f"p{i:03d}" for i in range(0, 20, 3)]  # 7 of the 20
    resp = await client.post(
        "/v1/lists", data="\n".join(json.dumps(i) for i in affected), headers=NDJSON
    )
    list_id = (await resp.json())["list_id"]
    incident = await client.post(
        "/v1/incidents", json={**INCIDENT, "audience": {"list_id": list_id}}
    )
    assert incident.status == 201, await incident.text()
    notice_id = (await incident.json())["notice_id"]
    approved = await client.post(
        f"/v1/notices/{notice_id}/approve", headers=await _key(store, "notices:approve")
    )
    assert approved.status == 200, await approved.text()

    await segment_notice(
        store, bus, notice_id=notice_id, batch_size=3, keyring=IntakeSettings().phone_keyring
    )
    batches = await take_batches(bus, topology.delivery_queue("sms"))
    people = [r.subject_id for b in batches for r in b.recipients]
    assert sorted(people) == affected
    numbers = [r.phone for b in batches for r in b.recipients]
    assert numbers == sorted(numbers, key=lambda n: phone.lookup_hash(n, _hash_key()))
    notice = await store.notices.find_one({"_id": notice_id})
    assert notice is not None
    assert (await partitions.progress_of(store, [notice]))[notice["_id"]].recipients_published == 7
    # Intake indexes the members in the order the segmenter streams them.
    indexes = await store.subjects.index_information()
    assert indexes["lists"]["key"] == [("lists", 1), ("phone_hash", 1), ("_id", 1)]


def _hash_key() -> bytes:
    return IntakeSettings().phone_hash_key.get_secret_value().encode()
