"""Attempt documents: one entry per person, what a receipt's status is read from."""

from __future__ import annotations

from datetime import UTC, datetime

from alimi import attempts
from alimi.attempts import Outcome

AT = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def _doc(*outcomes: Outcome) -> dict[str, object]:
    return attempts.document(
        "ntc_a:sms:00000001#1",
        kind=attempts.SEND,
        notice_id="ntc_a",
        incident_id="inc_a",
        channel="sms",
        at=AT,
        outcomes=outcomes,
        batch_id="ntc_a:sms:00000001",
    )


def test_when_an_attempt_is_written__then_it_holds_each_persons_outcome_and_its_counts() -> None:
    doc = _doc(
        Outcome("s1", "sent", message_id="rq1-1", message_type="SMS"),
        Outcome("s2", "sent", message_id="rq1-2", message_type="SMS"),
        Outcome("s3", "retrying", error_code="timeout", in_doubt=True, retry_after_s=3),
    )
    assert doc["counts"] == {"sent": 2, "retrying": 1}
    assert doc["requests"] == ["rq1"]  # the provider request reports will name
    assert doc["people"][2] == {
        "subject_id": "s3",
        "status": "retrying",
        "error_code": "timeout",
        "in_doubt": True,
    }  # Retry-After is for the next try, not the record
    assert "dead_lettered" not in doc


def test_when_people_are_given_up__then_the_attempt_says_so_for_the_dead_letter_summary() -> None:
    doc = _doc(Outcome("s1", "failed", error="gave up", dead_lettered=True))
    assert doc["dead_lettered"] is True
    assert doc["people"][0]["dead_lettered"] is True


def test_when_a_person_has_no_entry_yet__then_they_are_claimed() -> None:
    doc = _doc(Outcome("s1", "sent", message_id="rq1-1"))
    assert attempts.status_of(attempts.entry_for(doc, "s1")) == "sent"
    assert attempts.status_of(attempts.entry_for(doc, "s9")) == "claimed"
    assert attempts.status_of(attempts.entry_for(None, "s1")) == "claimed"
    assert set(attempts.entries(doc)) == {"s1"}


def test_when_channel_facts_are_known__then_they_are_kept_beside_the_status() -> None:
    doc = _doc(Outcome("s1", "fell_back", reason="not_reachable", extra={"fallback_to": "sms"}))
    assert doc["people"][0] == {
        "subject_id": "s1",
        "status": "fell_back",
        "reason": "not_reachable",
        "fallback_to": "sms",
    }
