"""What the law requires a breach notice to say, and by when."""

from datetime import UTC, datetime, timedelta

from alimi import compliance


def test_when_nothing_is_given__then_every_pipa_item_is_missing() -> None:
    gaps = compliance.missing(["KR-PIPA"], None, "")
    assert [item.field for _, item in gaps] == [
        "leaked_items",
        "when_and_how",
        "what_you_can_do",
        "countermeasures",
        "contact",
    ]


def test_when_no_jurisdiction_is_named__then_nothing_is_required() -> None:
    assert compliance.missing([], None, "") == []


def test_when_an_item_is_blank__then_it_counts_as_missing() -> None:
    disclosure = {"when_and_how": "  ", "likely_consequences": "x", "countermeasures": "y"}
    gaps = compliance.missing(["EU-GDPR"], disclosure, "dpo@example.org")
    assert [item.field for _, item in gaps] == ["when_and_how"]


def test_when_rendered_in_english__then_items_are_labelled_in_order() -> None:
    text = compliance.render(
        {"countermeasures": "Reset passwords.", "leaked_items": ["name", "phone"]}, "en-GB"
    )
    assert text == (
        "■ What leaked: name, phone\n■ What we are doing, and how we will make it right: "
        "Reset passwords."
    )


def test_the_deadline_is_72_hours_after_discovery() -> None:
    found = datetime(2026, 11, 28, 0, 0, tzinfo=UTC)
    assert compliance.deadline(found) == datetime(2026, 12, 1, 0, 0, tzinfo=UTC)


def test_when_1000_or_more_are_affected__then_a_pipa_regulator_report_is_due() -> None:
    assert compliance.regulator_report_due(["KR-PIPA", "EU-GDPR"], 999) == []
    assert compliance.regulator_report_due(["KR-PIPA", "EU-GDPR"], 1000) == ["KR-PIPA"]


DISCOVERED = datetime(2026, 11, 28, 0, 0, tzinfo=UTC)  # deadline: 2026-12-01 00:00 UTC


def test_before_the_deadline__then_the_note_says_how_long_is_left() -> None:
    when = compliance.legal_deadline(DISCOVERED, DISCOVERED + timedelta(hours=1, minutes=30))
    assert when.fields() == {
        "deadline": "2026-12-01T00:00:00+00:00",
        "seconds_left": 70 * 3600 + 30 * 60,
        "overdue": False,
        "overdue_by_s": 0,
        "deadline_note": "2d 22h left to the 72-hour legal deadline (2026-12-01 00:00 UTC).",
    }


def test_after_the_deadline__then_it_is_overdue_and_by_how_much() -> None:
    when = compliance.legal_deadline(DISCOVERED, DISCOVERED + timedelta(days=10))
    assert (when.overdue, when.overdue_by_s) == (True, 7 * 86_400)
    assert when.fields()["seconds_left"] == -7 * 86_400
    assert when.note() == (
        "Overdue by 7d 0h: the 72-hour legal deadline passed at 2026-12-01 00:00 UTC."
        " Tell the affected people without further delay."
    )


def test_the_regulator_report_says_by_when__or_that_it_is_overdue_and_by_how_much() -> None:
    due = compliance.regulator_report_due(["KR-PIPA"], 1500)
    early = compliance.legal_deadline(DISCOVERED, DISCOVERED + timedelta(hours=1))
    late = compliance.legal_deadline(DISCOVERED, DISCOVERED + timedelta(hours=75))
    assert compliance.regulator_report_note(due, early) == (
        "Report to the Personal Information Protection Commission (PIPC) (KR-PIPA)"
        " by 2026-12-01 00:00 UTC."
    )
    assert compliance.regulator_report_note(due, late) == (
        "The report to the Personal Information Protection Commission (PIPC) (KR-PIPA)"
        " is overdue by 3h 00m: make it now."
    )
    assert compliance.regulator_report_note([], late) is None


def test_a_stored_deadline_is_the_incidents_own() -> None:
    own = DISCOVERED + timedelta(hours=24)
    now = DISCOVERED + timedelta(hours=25)
    incident = {"discovered_at": DISCOVERED, "deadline": own}
    assert compliance.incident_deadline(incident, now).overdue_by_s == 3600
    assert (
        compliance.incident_deadline({"discovered_at": DISCOVERED}, now).seconds_left == 47 * 3600
    )
