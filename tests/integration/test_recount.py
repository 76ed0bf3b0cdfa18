"""Counters repaired from the documents: rare, off the hot path, and only when quiet."""

from __future__ import annotations

from datetime import UTC, datetime

from alimi import counters, recount
from alimi.bus import Bus
from alimi.store import Store
from alimi_segmenter import progress
from support import seed_receipts

PEOPLE = [
    {"subject_id": "a", "status": "delivered", "channel": "sms"},
    {"subject_id": "b", "status": "sent", "channel": "sms", "fallback_from": "kakao"},
    {"subject_id": "c", "status": "failed", "channel": "kakao"},
    {"subject_id": "d", "status": "skipped", "channel": None, "reason": "no_phone"},
]


async def test_when_the_counters_agree_with_the_documents__then_nothing_is_written(
    store: Store,
) -> None:
    await seed_receipts(store, "ntc_r", PEOPLE)
    found = await recount.repair(store, "ntc_r")
    assert found.result == "agreed"
    assert found.truth.by_channel == {
        "sms": {"delivered": 1, "sent": 1},
        "kakao": {"failed": 1},
        "none": {"skipped": 1},
    }
    assert found.truth.fell_back == {"kakao": 1}
    assert await store.notice_counts.count_documents({"shard": recount.RECOUNT_SHARD}) == 0


async def test_when_a_counter_went_wrong__then_the_recount_repairs_the_sum(store: Store) -> None:
    await seed_receipts(store, "ntc_r", PEOPLE)
    # A shard lost (a document removed by hand) and another one inflated.
    await store.notice_counts.delete_many({"notice_id": "ntc_r"})
    await counters.add(store, "ntc_r", counters.Delta().add("sms", "sent", 7), shard="bogus")

    found = await recount.repair(store, "ntc_r")

    assert found.result == "repaired"
    assert found.drift == {
        "sms": {"delivered": 1, "sent": -6},
        "kakao": {"failed": 1},
        "none": {"skipped": 1},
    }
    counts = await counters.of_notice(store, "ntc_r")
    assert (counts.by_channel, counts.fell_back) == (found.truth.by_channel, {"kakao": 1})
    assert (await recount.repair(store, "ntc_r")).result == "agreed"


async def test_when_a_sending_notice_stalls_on_wrong_counts__then_it_is_recounted_and_completes(
    store: Store, bus: Bus
) -> None:
    await store.notices.insert_one(
        {
            "_id": "ntc_r",
            "incident_id": "inc_1",
            "seq": 1,
            "state": "sending",
            "created_at": datetime.now(UTC),
            "progress": {"recipients_published": 3, "skipped_no_phone": 1},
        }
    )
    await seed_receipts(store, "ntc_r", PEOPLE)
    await store.notice_counts.delete_many({"notice_id": "ntc_r"})  # the counts are gone
    now = [0.0]
    tracker = progress.Tracker(store, bus, stall_s=60, recount_every_s=600, clock=lambda: now[0])

    assert await tracker.check() == 0  # 0 of 4 final: nothing to say yet
    now[0] = 30.0
    assert await tracker.check() == 0  # not stalled long enough to recount
    now[0] = 61.0
    assert await tracker.check() == 0  # stalled: recounted, repaired
    assert await tracker.check() == 1  # and now every person is final
    notice = await store.notices.find_one({"_id": "ntc_r"})
    assert notice is not None and notice["state"] == "completed"
