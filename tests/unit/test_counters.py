"""A notice's counts: deltas written with the work, summed over shards."""

from __future__ import annotations

import asyncio

from alimi import counters, recount
from alimi.counters import Delta, NoticeCounts, Shards


def test_when_people_move_between_statuses__then_the_delta_says_how_many_each_way() -> None:
    delta = Delta().add("sms", "sent", 3).move("sms", "sent", "sms", "delivered")
    assert delta.increments() == {"by_channel.sms.sent": 2, "by_channel.sms.delivered": 1}


def test_when_a_claim_is_counted__then_nothing_changes_because_claims_are_in_flight() -> None:
    assert not Delta().add("sms", "claimed", 5)
    assert Delta().move("kakao", "fell_back", "sms", "claimed").increments() == {
        "by_channel.kakao.fell_back": -1
    }


def test_when_people_are_decided_before_any_channel__then_they_count_under_none() -> None:
    assert Delta().add(None, "skipped").increments() == {"by_channel.none.skipped": 1}


def test_when_shards_are_summed__then_the_notice_counts_add_up_and_zeros_go() -> None:
    counts = counters.from_documents(
        [
            {
                "by_channel": {"sms": {"sent": 3}, "kakao": {"fell_back": 2}},
                "fell_back": {"kakao": 2},
            },
            {"by_channel": {"sms": {"sent": -3, "delivered": 3}, "kakao": {"fell_back": -2}}},
            {"by_channel": {"sms": {"sent": 2}}},
        ]
    ).pruned()
    assert counts.by_channel == {"sms": {"delivered": 3, "sent": 2}}
    assert counts.fell_back == {"kakao": 2}
    assert (counts.reached(), counts.final(), counts.total()) == (5, 5, 5)


def test_when_counts_are_compared__then_the_difference_is_per_channel_and_status() -> None:
    truth = NoticeCounts({"sms": {"sent": 4, "delivered": 6}}, {"kakao": 1})
    counted = NoticeCounts({"sms": {"sent": 5, "delivered": 6}}, {})
    drift = recount.difference(truth, counted)
    assert (drift.by_channel, drift.fell_back) == ({"sms": {"sent": -1}}, {"kakao": 1})


async def test_when_writers_overlap__then_no_two_hold_the_same_shard() -> None:
    shards = Shards("delivery-sms@host:1", slots=2)
    held: set[str] = set()
    most = 0

    async def write() -> None:
        nonlocal most
        async with shards.take() as shard:
            assert shard not in held
            held.add(shard)
            most = max(most, len(held))
            await asyncio.sleep(0.01)
            held.discard(shard)

    await asyncio.gather(*(write() for _ in range(6)))
    assert most == 2
