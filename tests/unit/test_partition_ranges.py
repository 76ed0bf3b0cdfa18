"""Partitions of an audience: ranges of the phone-hash space, and the totals over them."""

from __future__ import annotations

import hashlib
import itertools

from alimi import partitions


def test_when_an_audience_grows__then_it_gets_more_partitions_up_to_the_limit() -> None:
    assert partitions.how_many(0, 50_000, 256) == 1
    assert partitions.how_many(50_000, 50_000, 256) == 1
    assert partitions.how_many(50_001, 50_000, 256) == 2
    assert partitions.how_many(33_700_000, 50_000, 256) == 256


def test_when_the_space_is_split__then_the_ranges_cover_every_hash_once_and_evenly() -> None:
    ranges = partitions.ranges(7)
    assert ranges[0][0] == "" and ranges[-1][1] is None
    assert all(hi == lo for (_, hi), (lo, _) in itertools.pairwise(ranges))
    hashes = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(7000)]
    sizes = [sum(1 for h in hashes if h >= lo and (hi is None or h < hi)) for lo, hi in ranges]
    assert sum(sizes) == len(hashes)
    assert min(sizes) > 0.8 * 1000 and max(sizes) < 1.2 * 1000


def test_when_partitions_are_summed__then_only_the_current_run_counts() -> None:
    notice = {"_id": "ntc_a", "run": 2}
    parts = [
        {"run": 1, "state": "done", "progress": {"recipients_published": 99}},
        {"run": 2, "state": "done", "progress": {"recipients_published": 10, "deduplicated": 2}},
        {
            "run": 2,
            "state": "running",
            "progress": {
                "recipients_published": 5,
                "skipped_no_phone": 1,
                "by_channel": {"sms": 5},
            },
        },
    ]
    total = partitions.summed(notice, parts)
    assert (total.recipients_published, total.deduplicated, total.skipped) == (15, 2, 1)
    assert (total.people, total.expected_receipts) == (18, 16)
    assert (total.partitions, total.partitions_done, total.by_channel) == (2, 1, {"sms": 5})


def test_when_a_notice_predates_partitions__then_its_own_totals_are_used() -> None:
    notice = {"_id": "ntc_old", "progress": {"recipients_published": 7, "skipped_unreachable": 1}}
    assert partitions.summed(notice, []).expected_receipts == 8
