"""Segmentation against the real MongoDB-wire server and RabbitMQ."""

from __future__ import annotations

import json
import logging
import os
from datetime import UTC, datetime
from typing import Any

import pytest

from alimi import counters, partitions, phone, topology
from alimi.bus import Bus
from alimi.counters import Shards
from alimi.crypto import Keyring
from alimi.messages import NoticeApproved
from alimi.store import Store
from alimi_segmenter import planner, progress
from alimi_segmenter.service import segment_notice
from support import receipts_of, seed_receipts

KEY = b"test-key"
KEYRING = Keyring.from_keys({"t1": os.urandom(32)})


def _person(sid: str, number: str | None, **extra: Any) -> dict[str, Any]:
    """A subject as intake stores it: the number encrypted for this subject, hashed."""
    return {
        "_id": sid,
        "name": f"n-{sid}",
        "phone_enc": phone.seal(KEYRING, sid, number) if number else None,
        "phone_hash": phone.lookup_hash(number, KEY) if number else None,
        "tags": ["a"],
        **extra,
    }


async def _segment(store: Store, bus: Bus, notice_id: str, batch_size: int = 100) -> None:
    await segment_notice(
        store,
        bus,
        notice_id=notice_id,
        batch_size=batch_size,
        keyring=KEYRING,
        shards=Shards("segmenter-test", slots=1),
    )


async def _seed(store: Store) -> None:
    docs = [_person(f"s{i:04d}", f"+82105{i:07d}") for i in range(250)]
    docs[7] = _person("s0007", "+821050000003")  # the same number as s0003
    docs.append(_person("nophone", None))
    docs.append(_person("other", "+821099999999", tags=["b"]))
    await store.subjects.insert_many(docs)
    await store.ensure_indexes("subjects", "receipts", "notices", "attempts", "notice_counts")


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


async def _plan(store: Store, bus: Bus, notice_id: str, people_per_partition: int = 50_000) -> int:
    event = NoticeApproved(
        notice_id=notice_id, incident_id=f"inc_{notice_id}", approved_at=datetime.now(UTC)
    )
    return await planner.plan(
        store, bus, event, people_per_partition=people_per_partition, most_partitions=64
    )


async def _progress(store: Store, notice_id: str) -> partitions.Progress:
    notice = await store.notices.find_one({"_id": notice_id})
    assert notice is not None
    return (await partitions.progress_of(store, [notice]))[notice_id]


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
    await _segment(store, bus, "ntc_a", 100)

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
    progress_ = await _progress(store, "ntc_a")
    assert (progress_.recipients_published, progress_.skipped_no_phone) == (249, 1)
    assert (progress_.deduplicated, progress_.people) == (1, 251)
    skipped = (await receipts_of(store, "ntc_a"))["nophone"]
    assert (skipped["status"], skipped["reason"], skipped["channel"]) == (
        "skipped",
        "no_phone",
        "none",
    )
    counts = await counters.of_notice(store, "ntc_a")
    assert counts.by_channel == {"none": {"skipped": 1}}


async def test_when_resumed_from_a_checkpoint__then_only_later_recipients_are_published(
    store: Store, bus: Bus
) -> None:
    await _seed(store)
    await _notice(store, "ntc_full")
    await _segment(store, bus, "ntc_full", 100)
    full = await _published(bus)

    first = full[0]["recipients"]
    last_hash = phone.lookup_hash(first[-1]["phone"], KEY)
    # A segmenter planned ntc_resumed, published its first step and died.
    await _notice(store, "ntc_resumed")
    await _plan(store, bus, "ntc_resumed")
    await store.partitions.update_one(
        {"notice_id": "ntc_resumed"},
        {
            "$set": {
                "state": "running",
                "checkpoint": {"last_phone_hash": last_hash, "next_seq": 2, "no_phone_done": True},
            }
        },
    )
    await _segment(store, bus, "ntc_resumed", 100)
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
    await _segment(store, bus, "ntc_done", 100)
    assert await _published(bus) == []


async def test_when_every_receipt_is_final__then_the_notice_is_completed_and_staff_told(
    store: Store, bus: Bus
) -> None:
    await _notice(
        store, "ntc_p", state="sending", progress={"recipients_published": 2, "skipped_no_phone": 0}
    )
    tracker = progress.Tracker(store, bus)
    await seed_receipts(store, "ntc_p", [{"subject_id": "1", "status": "sent", "channel": "sms"}])
    assert await tracker.check() == 0
    await seed_receipts(
        store, "ntc_p", [{"subject_id": "2", "status": "failed", "channel": "kakao"}]
    )
    assert await tracker.check() == 1
    notice = await store.notices.find_one({"_id": "ntc_p"})
    assert notice is not None and notice["state"] == "completed"
    updates = await _published(bus, "slack")
    assert [(u["stage"], u["percent"]) for u in updates] == [("milestone", 50), ("completed", 100)]


async def test_when_a_milestone_is_crossed__then_staff_are_told_once(
    store: Store, bus: Bus
) -> None:
    await _notice(store, "ntc_m", state="sending", progress={"recipients_published": 4})
    # The fourth person is still being sent to (claimed): not counted yet.
    await seed_receipts(
        store,
        "ntc_m",
        [
            {"subject_id": str(i), "status": status, "channel": "kakao"}
            for i, status in enumerate(["sent", "delivered", "fell_back"])
        ],
    )
    tracker = progress.Tracker(store, bus)
    await tracker.check()
    await tracker.check()
    updates = await _published(bus, "slack")
    assert [(u["stage"], u["percent"]) for u in updates] == [("milestone", 50)]
    notice = await store.notices.find_one({"_id": "ntc_m"})
    assert notice is not None and sorted(notice["progress"]["milestones"]) == [25, 50]


async def _seed_preferences(store: Store) -> None:
    def person(i: int, **extra: Any) -> dict[str, Any]:
        return _person(f"p{i:03d}", f"+82106{i:07d}", **extra)

    docs = [person(i) for i in range(0, 10)]  # unknown reachability: Kakao, then SMS
    docs += [person(i, kakao_reachable=False) for i in range(10, 14)]  # known not on Kakao
    docs += [person(i, channels=["sms"]) for i in range(14, 17)]  # prefer SMS only
    docs += [person(i, channels=["kakao"], kakao_reachable=False) for i in range(17, 19)]
    await store.subjects.insert_many(docs)
    await store.ensure_indexes("subjects", "receipts", "notices", "attempts", "notice_counts")


async def test_when_people_prefer_channels__then_each_goes_to_their_first_reachable_one(
    store: Store, bus: Bus
) -> None:
    await _seed_preferences(store)
    await _notice(store, "ntc_c", channels=["kakao", "sms"])
    await _segment(store, bus, "ntc_c", 5)

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

    skipped = (await receipts_of(store, "ntc_c")).values()
    assert [(r["subject_id"], r["status"], r["reason"]) for r in skipped] == [
        ("p017", "skipped", "not_on_kakao"),
        ("p018", "skipped", "not_on_kakao"),
    ]
    progress_ = await _progress(store, "ntc_c")
    assert progress_.recipients_published == 17
    assert progress_.skipped_unreachable == 2
    assert progress_.by_channel == {"kakao": 10, "sms": 7}
    [started] = await _published(bus, "slack")
    assert (started["stage"], started["notice_id"]) == ("started", "ntc_c")


async def test_when_a_notice_goes_by_sms_only__then_kakao_only_readers_are_skipped(
    store: Store, bus: Bus
) -> None:
    await _seed_preferences(store)
    await _notice(store, "ntc_s", channels=["sms"])
    await _segment(store, bus, "ntc_s", 100)
    assert await _published(bus, "kakao") == []
    assert len([r for b in await _published(bus, "sms") for r in b["recipients"]]) == 17
    reasons = {r["reason"] for r in (await receipts_of(store, "ntc_s")).values()}
    assert reasons == {"channel_not_allowed"}


async def test_when_subjects_are_segmented__then_batches_carry_each_decrypted_number(
    store: Store, bus: Bus
) -> None:
    numbers = {f"d{i}": f"+82107{i:07d}" for i in range(5)}
    await store.subjects.insert_many([_person(sid, n) for sid, n in numbers.items()])
    await _notice(store, "ntc_d")
    await _segment(store, bus, "ntc_d")
    sent = {r["subject_id"]: r["phone"] for b in await _published(bus) for r in b["recipients"]}
    assert sent == numbers


async def test_when_a_number_cannot_be_decrypted__then_that_person_is_skipped_and_logged(
    store: Store, bus: Bus, caplog: pytest.LogCaptureFixture
) -> None:
    retired = Keyring.from_keys({"gone": os.urandom(32)})
    tampered = _person("u-tampered", "+821080000002")
    tampered["phone_enc"]["c"] = (
        bytes([tampered["phone_enc"]["c"][0] ^ 1]) + tampered["phone_enc"]["c"][1:]
    )
    moved = _person("u-moved", "+821080000003")
    moved["phone_enc"] = _person("ok-1", "+821080000003")["phone_enc"]  # sealed for ok-1
    unknown_key = _person("u-unknown-key", "+821080000001")
    unknown_key["phone_enc"] = phone.seal(retired, "u-unknown-key", "+821080000001")
    legacy = {
        **_person("u-no-ciphertext", None),
        "phone_hash": phone.lookup_hash("+821080000004", KEY),
    }
    good = [_person("ok-1", "+821080000010"), _person("ok-2", "+821080000011")]
    await store.subjects.insert_many([unknown_key, tampered, moved, legacy, *good])
    await store.ensure_indexes("subjects", "receipts", "notices", "attempts", "notice_counts")
    await _notice(store, "ntc_u")

    with caplog.at_level(logging.ERROR, logger="alimi.segmenter"):
        await _segment(store, bus, "ntc_u")

    sent = {r["subject_id"]: r["phone"] for b in await _published(bus) for r in b["recipients"]}
    assert sent == {"ok-1": "+821080000010", "ok-2": "+821080000011"}
    receipts = (await receipts_of(store, "ntc_u")).values()
    assert [(r["subject_id"], r["status"], r["reason"]) for r in receipts] == [
        ("u-moved", "skipped", "phone_unreadable"),
        ("u-no-ciphertext", "skipped", "phone_unreadable"),
        ("u-tampered", "skipped", "phone_unreadable"),
        ("u-unknown-key", "skipped", "phone_unreadable"),
    ]
    notice = await store.notices.find_one({"_id": "ntc_u"})
    assert notice is not None and notice["state"] == "sending"
    progress_ = await _progress(store, "ntc_u")
    assert (progress_.recipients_published, progress_.skipped_unreachable) == (2, 4)

    logged = {r.subject_id: r for r in caplog.records if r.levelno == logging.ERROR}  # type: ignore[attr-defined]
    assert sorted(logged) == ["u-moved", "u-no-ciphertext", "u-tampered", "u-unknown-key"]
    assert logged["u-unknown-key"].reason == "unknown_key"  # type: ignore[attr-defined]
    assert logged["u-unknown-key"].key_id == "gone"  # type: ignore[attr-defined]
    assert logged["u-tampered"].reason == "tampered"  # type: ignore[attr-defined]
    assert logged["u-moved"].reason == "tampered"  # type: ignore[attr-defined]
    assert logged["u-no-ciphertext"].reason == "malformed"  # type: ignore[attr-defined]
    for record in logged.values():
        text = record.getMessage() + repr(vars(record))
        assert "108000000" not in text and "010-8000" not in text


async def test_when_reports_come_in_after_completion__then_staff_hear_of_them_until_final(
    store: Store, bus: Bus
) -> None:
    await _notice(
        store, "ntc_f", state="sending", progress={"recipients_published": 2, "skipped_no_phone": 0}
    )
    await seed_receipts(
        store,
        "ntc_f",
        [
            {"subject_id": "1", "status": "sent", "channel": "sms"},
            {"subject_id": "2", "status": "sent", "channel": "sms"},
        ],
    )
    tracker = progress.Tracker(store, bus, reports_every_s=0, reports_cutoff_s=3600)
    assert await tracker.check() == 1
    await tracker.check()  # nothing new reported: nothing to say
    assert [u["stage"] for u in await _published(bus, "slack")] == ["completed"]

    await counters.add(
        store, "ntc_f", counters.Delta().move("sms", "sent", "sms", "delivered"), shard="t"
    )
    await tracker.check()
    await tracker.check()
    assert [u["stage"] for u in await _published(bus, "slack")] == ["reports"]

    await counters.add(
        store, "ntc_f", counters.Delta().move("sms", "sent", "sms", "undelivered"), shard="t"
    )
    await tracker.check()  # none awaited any more
    await tracker.check()
    assert [u["stage"] for u in await _published(bus, "slack")] == ["final"]
    notice = await store.notices.find_one({"_id": "ntc_f"})
    assert notice is not None and notice["reports_final_at"]


async def test_when_reports_never_come__then_the_summary_is_final_at_the_cut_off(
    store: Store, bus: Bus
) -> None:
    await _notice(
        store, "ntc_c", state="sending", progress={"recipients_published": 1, "skipped_no_phone": 0}
    )
    await seed_receipts(store, "ntc_c", [{"subject_id": "1", "status": "sent", "channel": "sms"}])
    tracker = progress.Tracker(store, bus, reports_cutoff_s=0)
    assert await tracker.check() == 1
    await tracker.check()
    assert [u["stage"] for u in await _published(bus, "slack")] == ["completed", "final"]
