"""How the applier sorts a request's reports against the attempts that made them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from alimi import attempts
from alimi.attempts import Outcome
from alimi_receipts.applier import retry_in, sort_reports

AT = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def _report(key: str | None, message_id: str, status: str = "delivered") -> dict[str, Any]:
    return {"grouping_key": key, "message_id": message_id, "status": status, "code": "1000"}


ATTEMPT = attempts.document(
    "ntc_a:sms:1#x",
    kind=attempts.SEND,
    notice_id="ntc_a",
    incident_id="inc_a",
    channel="sms",
    at=AT,
    outcomes=[
        Outcome("s1", "sent", message_id="rq1-1"),
        Outcome("s2", "failed", error_code="-2005"),
    ],
)
MADE = {"rq1": [ATTEMPT]}


def test_when_a_report_names_the_message_the_attempt_sent__then_it_is_accepted() -> None:
    found = sort_reports([_report("ntc_a:s1", "rq1-1")], MADE)
    assert [(r["grouping_key"], a["_id"]) for r, a in found.accepted] == [
        ("ntc_a:s1", "ntc_a:sms:1#x")
    ]


def test_when_no_attempt_made_the_request_yet__then_the_report_waits() -> None:
    found = sort_reports([_report("ntc_a:s3", "rq2-1")], MADE)
    assert [r["message_id"] for r in found.waiting] == ["rq2-1"]


def test_when_the_report_does_not_fit_what_was_sent__then_it_is_unknown() -> None:
    found = sort_reports(
        [
            _report("ntc_a:s1", "rq1-9"),  # another message of the request
            _report("ntc_a:s2", "rq1-2"),  # a person the request did not reach
            _report("ntc_b:s1", "rq1-1"),  # another notice
            _report(None, "rq1-1"),  # no grouping key
            _report("garbage", "rq1-1"),  # not a receipt id
        ],
        MADE,
    )
    assert len(found.unknown) == 5 and not found.accepted and not found.waiting


def test_when_a_request_repeats_a_report__then_the_repeat_is_a_duplicate() -> None:
    found = sort_reports([_report("ntc_a:s1", "rq1-1")] * 2, MADE)
    assert (len(found.accepted), found.duplicates) == (1, 1)


def test_when_reports_keep_waiting__then_they_are_tried_again_less_and_less_often() -> None:
    assert [retry_in(t) for t in (0, 1, 2, 3, 4, 5, 50)] == [0.5, 1, 2, 5, 10, 30, 30]
