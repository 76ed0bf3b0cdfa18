"""Segmentation against the real MongoDB-wire server and RabbitMQ."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from alimi import phone, topology
from alimi.bus import Bus
from alimi.store import Store
from alimi_segmenter import progress
from alimi_segmenter.service import segment_notice

KEY = b"test-key"


async def _seed(store: Store) -> None:
    docs = []
    for i in range(250):
        number = f"+82105{i:07d}"
        docs.append(
            {
                "_id": f"s{i:04d}",
                "name": f"n{i}",
                "phone": number,
                "phone_hash": phone.lookup_hash(number, KEY),
                "tags": ["a"],
            }
        )
    docs[7]["phone"], docs[7]["phone_hash"] = docs[3]["phone"], docs[3]["phone_hash"]
    docs.append({"_id": "nophone", "name": "x", "phone": None, "phone_hash": None, "tags": ["a"]})
    docs.append(
        {
            "_id": "other",
            "name": "y",
            "phone": "+821099999999",
            "phone_hash": phone.lookup_hash("+821099999999", KEY),
            "tags": ["b"],
        }
    )
    await store.subjects.insert_many(docs)
    await store.ensure_indexes("subjects", "receipts", "notices")


async def _notice(store: Store, notice_id: str, **extra: Any) -> None:
    await store.notices.insert_one(
        {
            "_id": notice_id,
            "incident_id": f"inc_{notice_id}",
            "seq": 1,
            "state": "approved",
            "body": "hi #{name}",
            "audience": {"filter": {"tags_any": ["a"]}},
            "channels": ["sms"],
            "created_at": datetime.now(UTC),
            **extra,
        }
    )


async def _published(bus: Bus, channel_name: str = "sms") -> list[dict[str, Any]]:
    channel = await bus.channel(prefetch=100)
    queue = await channel.get_queue(bus.names(topology.delivery_queue(channel_name)))
    batches = []
    while (message := await queue.get(fail=False)) is not None:
        await message.ack()
        batches.append(json.loads(message.body))
    await channel.close()
    return batches


async def test_when_a_notice_is_segmented__then_batches_cover_each_phone_once(
    store: Store, bus: Bus
) -> None:
    await _seed(store)
    await _notice(store, "ntc_a")
    await segment_notice(store, bus, notice_id="ntc_a", batch_size=100)

    batches = await _published(bus)
    assert [len(b["recipients"]) for b in batches] == [100, 100, 49]
    assert [b["batch_id"] for b in batches] == [f"ntc_a:sms:{i:08d}" for i in (1, 2, 3)]
    people = [r["subject_id"] for b in batches for r in b["recipients"]]
    assert len(people) == len(set(people)) == 249
    assert "other" not in people and "nophone" not in people
    shared = [r for b in batches for r in b["recipients"] if r.get("also_subject_ids")]
    assert len(shared) == 1 and {shared[0]["subject_id"], *shared[0]["also_subject_ids"]} == {
        "s0003",
        "s0007",
    }

    notice = await store.notices.find_one({"_id": "ntc_a"})
    assert notice is not None
    assert notice["state"] == "sending"
    assert notice["progress"]["recipients_published"] == 249
    assert notice["progress"]["skipped_no_phone"] == 1
    skipped = await store.receipts.find_one({"_id": "ntc_a:nophone"})
    assert (
        skipped is not None and skipped["status"] == "skipped" and skipped["reason"] == "no_phone"
    )


async def test_when_resumed_from_a_checkpoint__then_only_later_recipients_are_published(
    store: Store, bus: Bus
) -> None:
    await _seed(store)
    await _notice(store, "ntc_full")
    await segment_notice(store, bus, notice_id="ntc_full", batch_size=100)
    full = await _published(bus)

    first = full[0]["recipients"]
    last_hash = phone.lookup_hash(first[-1]["phone"], KEY)
    await _notice(
        store,
        "ntc_resumed",
        state="segmenting",
        segmenter={"last_phone_hash": last_hash, "next_seq": 2, "no_phone_done": True},
    )
    await segment_notice(store, bus, notice_id="ntc_resumed", batch_size=100)
    resumed = await _published(bus)

    assert [b["batch_id"].split(":")[-1] for b in resumed] == ["00000002", "00000003"]
    assert [r["subject_id"] for b in resumed for r in b["recipients"]] == [
        r["subject_id"] for b in full[1:] for r in b["recipients"]
    ]


async def test_when_a_notice_is_already_sending__then_a_redelivered_event_publishes_nothing(
    store: Store, bus: Bus
) -> None:
    await _seed(store)
    await _notice(store, "ntc_done", state="sending")
    await segment_notice(store, bus, notice_id="ntc_done", batch_size=100)
    assert await _published(bus) == []


async def test_when_every_receipt_is_final__then_the_notice_is_completed_and_staff_told(
    store: Store, bus: Bus
) -> None:
    await _notice(
        store, "ntc_p", state="sending", progress={"recipients_published": 2, "skipped_no_phone": 0}
    )
    await store.receipts.insert_one({"_id": "ntc_p:1", "notice_id": "ntc_p", "status": "sent"})
    await store.receipts.insert_one({"_id": "ntc_p:2", "notice_id": "ntc_p", "status": "claimed"})
    assert await progress.check_progress(store, bus) == 0
    await store.receipts.update_one({"_id": "ntc_p:2"}, {"$set": {"status": "failed"}})
    assert await progress.check_progress(store, bus) == 1
    notice = await store.notices.find_one({"_id": "ntc_p"})
    assert notice is not None and notice["state"] == "completed"
    updates = await _published(bus, "slack")
    assert [(u["stage"], u["percent"]) for u in updates] == [("milestone", 50), ("completed", 100)]


async def test_when_a_milestone_is_crossed__then_staff_are_told_once(
    store: Store, bus: Bus
) -> None:
    await _notice(store, "ntc_m", state="sending", progress={"recipients_published": 4})
    for i, status in enumerate(["sent", "delivered", "fell_back", "claimed"]):
        await store.receipts.insert_one(
            {"_id": f"ntc_m:{i}", "notice_id": "ntc_m", "status": status}
        )
    await progress.check_progress(store, bus)
    await progress.check_progress(store, bus)
    updates = await _published(bus, "slack")
    assert [(u["stage"], u["percent"]) for u in updates] == [("milestone", 50)]
    notice = await store.notices.find_one({"_id": "ntc_m"})
    assert notice is not None and sorted(notice["progress"]["milestones"]) == [25, 50]


async def _seed_preferences(store: Store) -> None:
    def person(i: int, **extra: Any) -> dict[str, Any]:
        number = f"+82106{i:07d}"
        return {
            "_id": f"p{i:03d}",
            "name": f"n{i}",
            "phone": number,
            "phone_hash": phone.lookup_hash(number, KEY),
            "tags": ["a"],
            **extra,
        }

    docs = [person(i) for i in range(0, 10)]  # unknown reachability: Kakao, then SMS
    docs += [person(i, kakao_reachable=False) for i in range(10, 14)]  # known not on Kakao
    docs += [person(i, channels=["sms"]) for i in range(14, 17)]  # prefer SMS only
    docs += [person(i, channels=["kakao"], kakao_reachable=False) for i in range(17, 19)]
    await store.subjects.insert_many(docs)
    await store.ensure_indexes("subjects", "receipts", "notices")


async def test_when_people_prefer_channels__then_each_goes_to_their_first_reachable_one(
    store: Store, bus: Bus
) -> None:
    await _seed_preferences(store)
    await _notice(store, "ntc_c", channels=["kakao", "sms"])
    await segment_notice(store, bus, notice_id="ntc_c", batch_size=5)

    kakao = await _published(bus, "kakao")
    sms = await _published(bus, "sms")
    on_kakao = {r["subject_id"]: r for b in kakao for r in b["recipients"]}
    on_sms = {r["subject_id"]: r for b in sms for r in b["recipients"]}
    assert sorted(on_kakao) == [f"p{i:03d}" for i in range(10)]
    assert all(r["fallback"] == ["sms"] for r in on_kakao.values())
    assert sorted(on_sms) == [f"p{i:03d}" for i in range(10, 17)]
    assert all(r["fallback"] == [] for r in on_sms.values())
    # One step numbering for every channel: batches of a step share their sequence number.
    seqs = sorted({int(b["batch_id"].rsplit(":", 1)[1]) for b in kakao + sms})
    assert seqs == list(range(1, len(seqs) + 1))
    assert all(len(b["recipients"]) <= 5 for b in kakao + sms)

    skipped = await store.receipts.find({"notice_id": "ntc_c"}).sort("_id", 1).to_list()
    assert [(r["subject_id"], r["status"], r["reason"]) for r in skipped] == [
        ("p017", "skipped", "not_on_kakao"),
        ("p018", "skipped", "not_on_kakao"),
    ]
    notice = await store.notices.find_one({"_id": "ntc_c"})
    assert notice is not None
    assert notice["progress"]["recipients_published"] == 17
    assert notice["progress"]["skipped_unreachable"] == 2
    assert notice["progress"]["by_channel"] == {"kakao": 10, "sms": 7}
    [started] = await _published(bus, "slack")
    assert (started["stage"], started["notice_id"]) == ("started", "ntc_c")


async def test_when_a_notice_goes_by_sms_only__then_kakao_only_readers_are_skipped(
    store: Store, bus: Bus
) -> None:
    await _seed_preferences(store)
    await _notice(store, "ntc_s", channels=["sms"])
    await segment_notice(store, bus, notice_id="ntc_s", batch_size=100)
    assert await _published(bus, "kakao") == []
    assert len([r for b in await _published(bus, "sms") for r in b["recipients"]]) == 17
    reasons = {r["reason"] for r in await store.receipts.find({"notice_id": "ntc_s"}).to_list()}
    assert reasons == {"channel_not_allowed"}
