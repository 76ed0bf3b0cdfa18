"""What the law requires a breach notice to say, and by when."""

from datetime import UTC, datetime

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
