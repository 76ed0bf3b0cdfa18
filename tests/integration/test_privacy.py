"""Personal data at rest: encrypted numbers, re-keying and the purge after retention.

The intake API in-process and the segmenter's service layer, against the real
MongoDB-wire server and RabbitMQ.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import bson
import pytest
from aiohttp.test_utils import TestClient, TestServer
from bson import json_util
from pydantic import SecretStr

from alimi import api_keys, counters, phone, topology
from alimi.bus import Bus
from alimi.crypto import Keyring
from alimi.messages import DeliveryBatch, Recipient, parse
from alimi.store import Store
from alimi_intake.app import init_app
from alimi_intake.privacy import rekey_subjects
from alimi_intake.settings import IntakeSettings
from alimi_segmenter.service import segment_notice
from support import follow_job, receipts_of, seed_receipts

PROBLEM = "application/problem+json"
K1, K2 = os.urandom(32), os.urandom(32)
RETENTION_DAYS = 30


def keys(*pairs: tuple[str, bytes]) -> str:
    return ",".join(f"{key_id}:{base64.b64encode(key).decode()}" for key_id, key in pairs)


def settings_for(mongo_url: str, amqp_url: str, namespace: str, phone_keys: str) -> IntakeSettings:
    return IntakeSettings(
        namespace=namespace,
        amqp_url=SecretStr(amqp_url),
        mongo_url=SecretStr(mongo_url),
        mongo_db=namespace,
        phone_keys=SecretStr(phone_keys),
        contact_retention_days=RETENTION_DAYS,
    )


@pytest.fixture
async def settings(mongo_url: str, amqp_url: str, namespace: str) -> IntakeSettings:
    return settings_for(mongo_url, amqp_url, namespace, keys(("k1", K1)))


@pytest.fixture
async def client(
    settings: IntakeSettings, store: Store, bus: Bus
) -> AsyncIterator[TestClient[Any, Any]]:
    admin, _ = await api_keys.create(store, name="privacy officer", scopes=["admin"])
    async with TestClient(
        TestServer(init_app(settings)), headers={"Authorization": f"Bearer {admin}"}
    ) as c:
        yield c


# Each person's number as the organisation sent it, and in E.164.
PEOPLE = {
    "c1": ("010-1234-5678", "+821012345678"),
    "c2": ("+82 10 1234 5678", "+821012345678"),  # c1's number, written otherwise
    "c3": ("01098765432", "+821098765432"),
    "c4": ("+44 7911 123456", "+447911123456"),  # 07700 900… is a fiction range: invalid
    "c5": ("010.5555.0101", "+821055550101"),
    "c6": ("(010) 4444-0202", "+821044440202"),
}


def _forms(e164: str) -> set[str]:
    """Every way the number could appear in clear: E.164, national, digits only."""
    digits = e164.lstrip("+")
    forms = {e164, digits}
    if e164.startswith("+82"):
        national = "0" + digits[2:]
        forms |= {national, f"{national[:3]}-{national[3:7]}-{national[7:]}", digits[2:]}
    else:
        forms.add(digits[2:])
    return forms


async def _import(
    client: TestClient[Any, Any], *, tags: dict[str, list[str]] | None = None
) -> None:
    rows = [
        {"external_id": sid, "name": f"이름{sid}", "phone": raw, "tags": (tags or {}).get(sid, [])}
        for sid, (raw, _) in PEOPLE.items()
    ]
    resp = await client.post("/v1/subjects", json=rows)
    assert resp.status == 200, await resp.text()


async def test_when_subjects_are_imported__then_no_clear_number_is_anywhere_in_the_store(
    client: TestClient[Any, Any], store: Store, settings: IntakeSettings
) -> None:
    await _import(client)
    # and a second import (updates) must not bring a clear number back either
    await _import(client)

    docs = await store.subjects.find({}).sort("_id", 1).to_list()
    assert [d["_id"] for d in docs] == sorted(PEOPLE)
    for doc in docs:
        as_text = json_util.dumps(doc) + repr(doc)
        as_bson = bson.encode(doc)
        for form in _forms(PEOPLE[doc["_id"]][1]):
            assert form not in as_text, f"{form} in {doc['_id']}"
            assert form.encode() not in as_bson, f"{form} in the BSON of {doc['_id']}"
        assert "phone" not in doc
        assert doc["phone_enc"]["k"] == "k1"
        assert (
            phone.unseal(settings.phone_keyring, doc["_id"], doc["phone_enc"])
            == (PEOPLE[doc["_id"]][1])
        )
    # the lookup hash still dedupes: c1 and c2 share a number
    by_id = {d["_id"]: d for d in docs}
    assert by_id["c1"]["phone_hash"] == by_id["c2"]["phone_hash"]
    assert by_id["c1"]["phone_masked"] == "+82******5678"


async def test_when_intake_encrypts__then_the_segmenter_with_the_same_keys_sends_the_numbers(
    client: TestClient[Any, Any], store: Store, bus: Bus, settings: IntakeSettings
) -> None:
    await _import(client, tags={sid: ["breach"] for sid in PEOPLE})
    await store.ensure_indexes("receipts", "notices")
    await store.notices.insert_one(
        {
            "_id": "ntc_seg",
            "incident_id": "inc_seg",
            "seq": 1,
            "state": "approved",
            "body": "x",
            "audience": {"filter": {"tags_any": ["breach"]}},
            "channels": ["sms"],
            "created_at": datetime.now(UTC),
        }
    )
    segmenter_keys = Keyring.parse(keys(("k2", K2), ("k1", K1)))  # rotated: k1 still reads
    await segment_notice(store, bus, notice_id="ntc_seg", batch_size=100, keyring=segmenter_keys)

    channel = await bus.channel(prefetch=10)
    queue = await channel.get_queue(bus.names(topology.delivery_queue("sms")))
    recipients = []
    while (message := await queue.get(fail=False)) is not None:
        await message.ack()
        recipients += json.loads(message.body)["recipients"]
    await channel.close()
    sent = {r["subject_id"]: (r["phone"], r["also_subject_ids"]) for r in recipients}
    assert sent == {
        "c1": ("+821012345678", ["c2"]),
        "c3": ("+821098765432", []),
        "c4": ("+447911123456", []),
        "c5": ("+821055550101", []),
        "c6": ("+821044440202", []),
    }


# --- re-keying ---------------------------------------------------------------------------


async def _keys_in_use(store: Store) -> dict[str, str | None]:
    return {
        d["_id"]: (d.get("phone_enc") or {}).get("k")
        async for d in store.subjects.find({}, {"phone_enc": 1})
    }


async def test_when_keys_rotate__then_rekey_moves_every_number_to_the_new_key_once(
    client: TestClient[Any, Any], store: Store
) -> None:
    await _import(client)
    # a subject stored by a version before encryption at rest: its number in clear
    await store.subjects.insert_one(
        {"_id": "legacy", "phone": "+821077770000", "phone_hash": "h", "tags": []}
    )
    await store.subjects.insert_one({"_id": "nobody", "phone_enc": None, "phone_hash": None})
    rotated = Keyring.parse(keys(("k2", K2), ("k1", K1)))

    first = await rekey_subjects(store, rotated, chunk=2)
    assert (first.scanned, first.rekeyed, first.encrypted, first.unreadable) == (7, 6, 1, 0)
    assert await _keys_in_use(store) == {
        **dict.fromkeys(PEOPLE, "k2"),
        "legacy": "k2",
        "nobody": None,
    }
    only_k2 = Keyring.parse(keys(("k2", K2)))
    for sid, (_, e164) in PEOPLE.items():
        doc = await store.subjects.find_one({"_id": sid})
        assert doc is not None and phone.unseal(only_k2, sid, doc["phone_enc"]) == e164
    legacy = await store.subjects.find_one({"_id": "legacy"})
    assert legacy is not None and "phone" not in legacy
    assert phone.unseal(only_k2, "legacy", legacy["phone_enc"]) == "+821077770000"

    again = await rekey_subjects(store, rotated)
    assert (again.scanned, again.rekeyed, again.encrypted) == (0, 0, 0)


async def test_when_a_number_cannot_be_decrypted__then_rekey_leaves_it_and_counts_it(
    client: TestClient[Any, Any], store: Store
) -> None:
    await _import(client)
    retired = Keyring.parse(keys(("k0", os.urandom(32))))
    await store.subjects.update_one(
        {"_id": "c3"}, {"$set": {"phone_enc": phone.seal(retired, "c3", "+821098765432")}}
    )
    before = await store.subjects.find_one({"_id": "c3"})

    result = await rekey_subjects(store, Keyring.parse(keys(("k2", K2), ("k1", K1))))

    assert (result.rekeyed, result.unreadable) == (5, 1)
    assert await store.subjects.find_one({"_id": "c3"}) == before


def _run_rekey(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "alimi_intake.rekey", "--chunk", "2"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_when_rekey_runs_as_a_command__then_it_rekeys_and_prints_a_summary(
    client: TestClient[Any, Any], store: Store, mongo_url: str, namespace: str
) -> None:
    await _import(client)
    env = {
        "ALIMI_MONGO_URL": mongo_url,
        "ALIMI_MONGO_DB": namespace,
        "ALIMI_PHONE_KEYS": keys(("k2", K2), ("k1", K1)),
    }

    done = _run_rekey(env)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert (summary["rekeyed"], summary["unreadable"], summary["current_key"]) == (6, 0, "k2")
    assert set((await _keys_in_use(store)).values()) == {"k2"}
    assert "+8210" not in done.stderr

    unreadable = _run_rekey({**env, "ALIMI_PHONE_KEYS": keys(("k3", os.urandom(32)))})
    assert unreadable.returncode == 1
    assert json.loads(unreadable.stdout)["unreadable"] == 6

    wrong = _run_rekey({**env, "ALIMI_PHONE_KEYS": "k2:tooshort"})
    assert wrong.returncode == 2
    assert "ALIMI_PHONE_KEYS" in wrong.stderr


# --- purge after retention ---------------------------------------------------------------


async def _incident(
    store: Store, incident_id: str, *, status: str, age_days: int, audience: dict[str, Any]
) -> str:
    now = datetime.now(UTC)
    notice_id = f"ntc_{incident_id}"
    await store.incidents.insert_one(
        {
            "_id": incident_id,
            "public_id": f"p_{incident_id}",
            "title": "t",
            "kind": "breach",
            "severity": "high",
            "status": status,
            "discovered_at": now,
            "jurisdictions": [],
            "status_url": "http://x",
            "created_at": now - timedelta(days=age_days),
        }
    )
    await store.notices.insert_one(
        {
            "_id": notice_id,
            "incident_id": incident_id,
            "seq": 1,
            "state": "completed",
            "body": "x",
            "audience": audience,
            "channels": ["sms"],
            "created_at": now,
            "progress": {"recipients_published": 3, "skipped_no_phone": 0},
        }
    )
    return notice_id


async def _breach(store: Store, *, status: str = "investigating", age_days: int = 1) -> str:
    """inc_old addressed c1 (and c2, same number), c3, c4 and c6; inc_open still needs c6."""
    notice = await _incident(
        store,
        "inc_old",
        status=status,
        age_days=age_days,
        audience={"subject_ids": ["c1", "c2", "c3", "c4", "c6"]},
    )
    await seed_receipts(
        store,
        notice,
        [
            {
                "subject_id": "c1",
                "status": "delivered",
                "channel": "sms",
                "also_subject_ids": ["c2"],
            },
            {"subject_id": "c3", "status": "undelivered", "channel": "sms"},
            {
                "subject_id": "c4",
                "status": "failed",
                "channel": "sms",
                "error": "http_500 provider down",
                "dead_lettered": True,
            },
            {"subject_id": "c6", "status": "delivered", "channel": "sms"},
        ],
        incident_id="inc_old",
    )
    await _incident(
        store, "inc_open", status="monitoring", age_days=2, audience={"subject_ids": ["c6"]}
    )
    return notice


PURGE = "/v1/incidents/inc_old/purge-contact-data"


async def test_when_the_retention_period_has_not_passed__then_purge_is_refused_with_409(
    client: TestClient[Any, Any], store: Store
) -> None:
    await _import(client)
    await _breach(store, status="investigating", age_days=RETENTION_DAYS - 1)
    before = await store.subjects.find({}).sort("_id", 1).to_list()

    resp = await client.post(PURGE)

    assert resp.status == 409 and resp.content_type == PROBLEM
    problem = await resp.json()
    assert problem["title"] == "Contact data still retained"
    assert "until it is resolved or until" in problem["detail"]
    assert await store.subjects.find({}).sort("_id", 1).to_list() == before


async def test_when_a_notice_of_the_incident_may_still_send__then_purge_is_refused_with_409(
    client: TestClient[Any, Any], store: Store
) -> None:
    await _import(client)
    notice = await _breach(store, status="resolved")
    await store.notices.update_one({"_id": notice}, {"$set": {"state": "sending"}})

    resp = await client.post(PURGE)

    assert resp.status == 409 and resp.content_type == PROBLEM
    assert f"{notice} (sending)" in (await resp.json())["detail"]


@pytest.mark.parametrize(
    ("status", "age_days"), [("resolved", 1), ("investigating", RETENTION_DAYS + 1)]
)
async def test_when_purged_after_retention__then_contact_data_goes_and_receipts_stay(
    client: TestClient[Any, Any], store: Store, status: str, age_days: int
) -> None:
    await _import(client)
    await _breach(store, status=status, age_days=age_days)
    receipts_before = await store.receipts.find({}).sort("_id", 1).to_list()
    view_before = await (await client.get("/v1/incidents/inc_old")).json()

    resp = await client.post(PURGE)

    assert resp.headers["Location"].startswith("/v1/purges/prg_")
    job = await follow_job(client, resp)
    answer = job["result"]
    assert job["state"] == "succeeded" and job["progress"]["done"] == 4
    assert answer["subjects_purged"] == 4  # c1, c2 (same number, on c1's receipt), c3, c4
    assert answer["kept_for_open_incidents"] == ["inc_open"]
    subjects = {d["_id"]: d for d in await store.subjects.find({}).to_list()}
    for sid in ("c1", "c2", "c3", "c4"):
        gone = subjects[sid]
        assert not {"phone_enc", "phone_hash", "phone_masked", "name", "phone"} & set(gone), sid
        assert gone["contact_purged_for"] == "inc_old"
    for sid in ("c5", "c6"):  # not addressed by inc_old / still needed by inc_open
        assert {"phone_enc", "phone_hash", "phone_masked", "name"} <= set(subjects[sid]), sid
    assert await store.receipts.find({}).sort("_id", 1).to_list() == receipts_before
    view_after = await (await client.get("/v1/incidents/inc_old")).json()
    assert view_after["notices"] == view_before["notices"]
    [entry] = await store.audit.find({"action": "contact_data.purged"}).to_list()
    assert entry["target"] == "inc_old" and entry["details"]["subjects_purged"] == 4

    again = await follow_job(client, await client.post(PURGE))
    assert again["result"]["subjects_purged"] == 0


async def test_when_a_purged_person_is_imported_again__then_their_contact_data_is_back(
    client: TestClient[Any, Any], store: Store
) -> None:
    await _import(client)
    await _breach(store, status="resolved")
    assert (await follow_job(client, await client.post(PURGE)))["state"] == "succeeded"
    await _import(client)
    doc = await store.subjects.find_one({"_id": "c1"})
    assert doc is not None and doc["phone_enc"] and "contact_purged_at" not in doc


async def test_when_the_incident_is_unknown__then_404_problem(
    client: TestClient[Any, Any],
) -> None:
    resp = await client.post("/v1/incidents/inc_nope/purge-contact-data")
    assert resp.status == 404 and resp.content_type == PROBLEM


async def test_when_the_key_is_not_an_admin__then_purge_is_forbidden(
    client: TestClient[Any, Any], store: Store
) -> None:
    await _breach(store, status="resolved")
    operator, _ = await api_keys.create(
        store, name="operator", scopes=["subjects:write", "incidents:write", "incidents:read"]
    )
    resp = await client.post(PURGE, headers={"Authorization": f"Bearer {operator}"})
    assert resp.status == 403 and resp.content_type == PROBLEM


def _dead_letter(notice_id: str, subject_id: str, number: str) -> DeliveryBatch:
    return DeliveryBatch(
        batch_id=f"{notice_id}:sms:00000001:a4",
        notice_id=notice_id,
        incident_id=notice_id.removeprefix("ntc_"),
        channel="sms",
        attempt=4,
        recipients=(Recipient(subject_id=subject_id, phone=number),),
    )


async def test_when_purged__then_the_incidents_dead_letters_with_clear_numbers_are_discarded(
    client: TestClient[Any, Any], store: Store, bus: Bus
) -> None:
    await _import(client)
    notice = await _breach(store, status="resolved")
    # c4 was given up on after the last retry: failed, and its batch (with the
    # number in clear) waits in the dead-letter queue, next to another notice's.
    mine = _dead_letter(notice, "c4", PEOPLE["c4"][1])
    other = _dead_letter("ntc_inc_open", "c6", PEOPLE["c6"][1])
    for batch in (mine, other):
        await bus.publish(
            topology.DEAD,
            topology.delivery_queue("sms"),
            batch.to_bytes(),
            message_id=batch.batch_id,
        )

    answer = (await follow_job(client, await client.post(PURGE)))["result"]

    assert (answer["dead_letters_discarded"], answer["dead_letters_remain"]) == (1, False)
    left = await _drain(bus, topology.dead_queue(topology.delivery_queue("sms")))
    assert left == [other.batch_id]  # the other notice's dead letter is still there
    receipt = (await receipts_of(store, notice))["c4"]
    assert receipt["status"] == "failed" and receipt["error"] == "http_500 provider down"
    assert "dead_lettered" not in receipt and receipt["dead_letter_discarded_at"]
    assert receipt["events"][-1]["detail"].startswith("dead letter discarded")
    assert (await counters.of_notice(store, notice)).count("failed") == 1
    pending = await (await client.get(f"/v1/notices/{notice}/dead-letters")).json()
    assert pending["total"] == 0  # nothing left to replay

    again = (await follow_job(client, await client.post(PURGE)))["result"]
    assert again["dead_letters_discarded"] == 0


async def _drain(bus: Bus, queue_name: str) -> list[str]:
    """Batch ids left in ``queue_name``, taken off it."""
    channel = await bus.channel(prefetch=0)
    try:
        queue = await channel.get_queue(bus.names(queue_name))
        found = []
        while (message := await queue.get(fail=False)) is not None:
            found.append(parse(message.body, DeliveryBatch).batch_id)
            await message.ack()
        return found
    finally:
        await channel.close()
