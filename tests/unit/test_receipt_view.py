"""A receipt as people read it: the receipt, its current attempt's entry, its report."""

from __future__ import annotations

from datetime import UTC, datetime

from alimi import attempts, receipt_view
from alimi.attempts import Outcome

AT = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
RECEIPT = {
    "_id": "ntc_a:s1",
    "notice_id": "ntc_a",
    "subject_id": "s1",
    "also_subject_ids": ["s2"],
    "destination": "+82******5678",
    "attempt": "att-2",
    "history": ["att-1"],
    "claimed_at": AT,
    "channel": "sms",
    "fallback_from": "kakao",
}


def _attempt(outcome: Outcome, attempt_id: str = "att-2") -> dict[str, object]:
    return attempts.document(
        attempt_id,
        kind=attempts.SEND,
        notice_id="ntc_a",
        incident_id="inc_a",
        channel="sms",
        at=AT,
        outcomes=[outcome],
    )


def test_when_the_attempt_is_not_written__then_the_person_is_claimed() -> None:
    view = receipt_view.compose(RECEIPT, None, None)
    assert (view.status, view.channel, view.final) == ("claimed", "sms", False)


def test_when_the_report_is_for_the_recorded_message__then_it_gives_the_status() -> None:
    attempt = _attempt(Outcome("s1", "sent", message_id="rq2-7"))
    report = {"message_id": "rq2-7", "status": "delivered", "code": "1000"}
    view = receipt_view.compose(RECEIPT, attempt, report)
    assert (view.status, view.message_id, view.fallback_from) == ("delivered", "rq2-7", "kakao")
    assert view.as_dict()["attempts"] == 2
    assert view.as_dict()["also_subject_ids"] == ["s2"]


def test_when_the_report_is_for_another_message__then_it_is_not_applied() -> None:
    attempt = _attempt(Outcome("s1", "sent", message_id="rq2-7"))
    report = {"message_id": "rq1-7", "status": "undelivered"}
    view = receipt_view.compose(RECEIPT, attempt, report)
    assert (view.status, view.report) == ("sent", None)


def test_when_the_person_was_not_sent__then_a_report_changes_nothing() -> None:
    attempt = _attempt(Outcome("s1", "failed", error_code="-2005"))
    view = receipt_view.compose(RECEIPT, attempt, {"message_id": "x", "status": "delivered"})
    assert view.status == "failed"


def test_when_a_receipt_has_a_history__then_its_events_follow_every_attempt_and_the_report() -> (
    None
):
    first = attempts.document(
        "att-1",
        kind=attempts.SEND,
        notice_id="ntc_a",
        incident_id="inc_a",
        channel="kakao",
        at=AT,
        outcomes=[Outcome("s1", "fell_back", detail="3018 not a KakaoTalk user")],
    )
    second = _attempt(Outcome("s1", "sent", message_id="rq2-7"))
    report = {"message_id": "rq2-7", "status": "delivered", "code": "1000", "message": "ok"}
    view = receipt_view.compose(RECEIPT, second, report)
    events = receipt_view.events(view, {"att-1": first, "att-2": second})
    assert [(e["status"], e["channel"]) for e in events] == [
        ("fell_back", "kakao"),
        ("sent", "sms"),
        ("delivered", "sms"),
    ]
    assert events[0]["detail"] == "3018 not a KakaoTalk user"
    assert events[-1]["detail"] == "1000 ok"
