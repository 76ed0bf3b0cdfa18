"""What watch and incident show count, from GET /v1/incidents/{id}'s notices."""

from __future__ import annotations

from typing import Any

from alimi_cli.notice_counts import Rate, channel_rows, failures, is_done, totals, watched


def _notice(state: str, by_channel: dict[str, dict[str, int]], **kw: Any) -> dict[str, Any]:
    return {
        "notice_id": kw.pop("notice_id", "ntc_1"),
        "seq": kw.pop("seq", 1),
        "state": state,
        "recipients": kw.pop("recipients", 0),
        "counts_by_channel": by_channel,
        "fell_back": kw.pop("fell_back", {}),
    }


SENDING = _notice(
    "sending",
    {
        "kakao": {"delivered": 3, "sent": 1, "claimed": 2},
        "sms": {"sent": 2, "undelivered": 1, "failed": 1, "retrying": 1},
        "none": {"skipped": 4},
    },
    recipients=12,
    fell_back={"kakao": 2},
)


def test_each_channel_is_a_row_with_the_skipped_last() -> None:
    assert channel_rows(SENDING) == [
        (
            "kakao",
            {"sent": 1, "delivered": 3, "failed": 0, "fell back": 2, "skipped": 0, "waiting": 2},
        ),
        (
            "sms",
            {"sent": 2, "delivered": 0, "failed": 2, "fell back": 0, "skipped": 0, "waiting": 1},
        ),
        (
            "none",
            {"sent": 0, "delivered": 0, "failed": 0, "fell back": 0, "skipped": 4, "waiting": 0},
        ),
    ]


def test_totals_count_final_receipts_against_the_recipients() -> None:
    counted = totals([SENDING])
    assert (counted.recipients, counted.finished, counted.waiting) == (12, 8, 4)
    assert (counted.awaiting_report, counted.failed) == (3, 2)


def test_notices_waiting_for_approval_are_not_watched() -> None:
    pending = _notice("pending_approval", {}, notice_id="ntc_2", seq=2)
    assert watched([SENDING, pending]) == [SENDING]
    assert watched([SENDING, pending], "ntc_2") == []
    assert not is_done([], "completed")  # nothing approved yet: wait for it


def test_done_means_finished__and_delivered_means_every_report_back_too() -> None:
    completed = {**SENDING, "state": "completed"}
    assert not is_done([SENDING], "completed")
    assert is_done([completed], "completed")
    assert not is_done([completed], "delivered")  # 3 still sent, not yet reported
    reported = _notice("completed", {"sms": {"delivered": 2, "undelivered": 1}})
    assert is_done([reported, _notice("halted", {})], "delivered")


def test_failures_name_the_notice_and_the_count() -> None:
    assert failures([SENDING]) == ["notice #1: 2 message(s) failed or were not delivered"]
    assert failures([_notice("failed", {})]) == ["notice #1 ntc_1 failed"]
    assert failures([_notice("completed", {"kakao": {"delivered": 1}})]) == []


def test_the_rate_and_eta_come_from_successive_polls_in_a_window() -> None:
    rate = Rate(window_s=10)
    assert rate.per_second is None and rate.eta_s(5) is None
    rate.add(0.0, 0)
    rate.add(2.0, 10)
    assert rate.per_second == 5.0
    assert rate.eta_s(20) == 4.0
    assert rate.eta_s(0) == 0.0
    for t in range(3, 30):
        rate.add(float(t), 10)  # stalled: the old progress leaves the window
    assert rate.per_second == 0.0 and rate.eta_s(20) is None
