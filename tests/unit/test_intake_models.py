"""Request bodies of the intake API."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from alimi_intake.models import IncidentIn, KeyIn, NoticeIn, SubjectIn


def problems(model: Any, data: dict[str, Any]) -> list[tuple[tuple[int | str, ...], str, str]]:
    with pytest.raises(ValidationError) as caught:
        model.model_validate(data)
    return [(e["loc"], e["type"], e["msg"]) for e in caught.value.errors()]


def incident(**changes: Any) -> dict[str, Any]:
    return {
        "title": "Customer data exposed",
        "severity": "high",
        "discovered_at": "2026-11-28T09:00:00+09:00",
        "notice": {"body": "#{name}님, #{incident_title} 안내: #{status_url}"},
        "audience": {"subject_ids": ["s1"]},
    } | changes


@pytest.mark.parametrize(
    "raw", ["010-1234-5678", "01012345678", "+82 10 1234 5678", "(010) 1234-5678"]
)
def test_when_a_subject_phone_is_written_nationally__then_it_is_stored_as_e164(raw: str) -> None:
    assert SubjectIn(external_id="s1", phone=raw).phone == "+821012345678"


def test_when_a_subject_has_no_phone__then_phone_is_none() -> None:
    subject = SubjectIn(external_id="s1")
    assert subject.phone is None
    assert (subject.name, subject.locale, subject.tags, subject.attributes) == ("", "ko", [], {})


@pytest.mark.parametrize("raw", ["12345", "hello", "010-123", "010-1234-5678-9012"])
def test_when_a_subject_phone_is_not_a_number__then_phone_is_named_with_the_expected_form(
    raw: str,
) -> None:
    [(loc, kind, msg)] = problems(SubjectIn, {"external_id": "s1", "phone": raw})
    assert loc == ("phone",)
    assert kind == "value_error"
    assert "expected E.164 like +821012345678 or 010-1234-5678" in msg


@pytest.mark.parametrize("raw", ["", "   ", None])
def test_when_a_subject_phone_is_empty__then_it_means_no_phone_as_an_empty_csv_cell(
    raw: str | None,
) -> None:
    assert SubjectIn.model_validate({"external_id": "s1", "phone": raw}).phone is None


def test_when_a_subject_phone_is_very_long__then_it_is_rejected_before_parsing() -> None:
    [(loc, kind, _)] = problems(SubjectIn, {"external_id": "s1", "phone": "0" * 33})
    assert (loc, kind) == (("phone",), "string_too_long")


def test_when_a_subject_name_has_spaces_around__then_they_are_stripped() -> None:
    assert SubjectIn(external_id="s1", name="  김민수 ").name == "김민수"


@pytest.mark.parametrize("locale", ["ko", "en-US"])
def test_when_a_locale_is_well_formed__then_it_is_accepted(locale: str) -> None:
    assert SubjectIn(external_id="s1", locale=locale).locale == locale


@pytest.mark.parametrize("locale", ["KO", "en_US", "eng", "en-us"])
def test_when_a_locale_is_malformed__then_it_is_rejected(locale: str) -> None:
    assert problems(SubjectIn, {"external_id": "s1", "locale": locale})[0][0] == ("locale",)


def test_when_a_subject_attribute_is_not_a_scalar__then_it_is_rejected() -> None:
    locs = [p[0] for p in problems(SubjectIn, {"external_id": "s1", "attributes": {"a": {}}})]
    assert locs and all(loc[:2] == ("attributes", "a") for loc in locs)


def test_when_a_subject_has_an_unknown_field__then_it_is_rejected() -> None:
    [(loc, kind, _)] = problems(SubjectIn, {"external_id": "s1", "email": "a@example.org"})
    assert (loc, kind) == (("email",), "extra_forbidden")


def test_when_an_incident_is_valid__then_every_field_is_parsed() -> None:
    parsed = IncidentIn.model_validate(incident(jurisdictions=["KR-PIPA"], contact=" 02-1599 "))
    assert parsed.title == "Customer data exposed"
    assert (parsed.kind, parsed.severity) == ("data_breach", "high")
    assert parsed.discovered_at == datetime(2026, 11, 28, 0, 0, tzinfo=UTC)
    assert parsed.discovered_at.utcoffset() == timedelta(hours=9)
    assert parsed.jurisdictions == ["KR-PIPA"]
    assert parsed.contact == "02-1599"
    assert parsed.notice.title == ""
    assert parsed.audience.subject_ids == ["s1"]


def test_when_discovered_at_has_no_time_zone__then_it_is_rejected_with_an_example() -> None:
    [(loc, kind, msg)] = problems(IncidentIn, incident(discovered_at="2026-11-28T09:00:00"))
    assert (loc, kind) == (("discovered_at",), "value_error")
    assert "needs a time zone" in msg
    assert "+09:00" in msg


def test_when_discovered_at_is_utc__then_it_is_accepted() -> None:
    parsed = IncidentIn.model_validate(incident(discovered_at="2026-11-28T00:00:00Z"))
    assert parsed.discovered_at.utcoffset() == timedelta(0)


@pytest.mark.parametrize("ahead", [timedelta(minutes=10), timedelta(days=3), timedelta(days=365)])
def test_when_discovered_at_is_in_the_future__then_it_is_refused_naming_the_field(
    ahead: timedelta,
) -> None:
    when = (datetime.now(UTC) + ahead).isoformat()
    [(loc, kind, msg)] = problems(IncidentIn, incident(discovered_at=when))
    assert (loc, kind) == (("discovered_at",), "value_error")
    assert "in the future" in msg and "5 minutes of clock skew are allowed" in msg


def test_when_discovered_at_is_a_little_ahead__then_clock_skew_allows_it() -> None:
    when = (datetime.now(UTC) + timedelta(minutes=4)).isoformat()
    assert IncidentIn.model_validate(incident(discovered_at=when)).discovered_at.tzinfo


def test_when_discovered_at_is_long_past__then_it_is_taken() -> None:
    when = (datetime.now(UTC) - timedelta(days=10)).isoformat()
    assert IncidentIn.model_validate(incident(discovered_at=when))


def test_when_the_body_uses_an_unknown_variable__then_the_message_lists_the_known_ones() -> None:
    [(loc, kind, msg)] = problems(IncidentIn, incident(notice={"body": "#{name} #{ssn}"}))
    assert (loc, kind) == (("notice", "body"), "value_error")
    assert "unknown template variable(s) ssn" in msg
    assert "known: contact, incident_title, name, status_url" in msg


def test_when_the_title_uses_an_unknown_variable__then_the_title_is_named() -> None:
    notice = {"body": "본문", "title": "#{card} #{ssn}"}
    [(loc, _, msg)] = problems(IncidentIn, incident(notice=notice))
    assert loc == ("notice", "title")
    assert "card, ssn" in msg


def test_when_an_incident_has_an_unknown_field__then_it_is_rejected() -> None:
    [(loc, kind, _)] = problems(IncidentIn, incident(owner="me"))
    assert (loc, kind) == (("owner",), "extra_forbidden")


def test_when_a_notice_has_an_unknown_field__then_it_is_rejected() -> None:
    [(loc, kind, _)] = problems(IncidentIn, incident(notice={"body": "x", "html": "<b>"}))
    assert (loc, kind) == (("notice", "html"), "extra_forbidden")


@pytest.mark.parametrize("severity", ["urgent", "HIGH", "", 3])
def test_when_the_severity_is_not_one_of_the_levels__then_the_levels_are_listed(
    severity: Any,
) -> None:
    [(loc, kind, msg)] = problems(IncidentIn, incident(severity=severity))
    assert (loc, kind) == (("severity",), "literal_error")
    assert "'low', 'medium', 'high' or 'critical'" in msg


def test_when_required_fields_are_missing__then_each_is_named() -> None:
    locs = {p[0] for p in problems(IncidentIn, {})}
    assert locs == {
        ("title",),
        ("severity",),
        ("discovered_at",),
        ("notice",),
        ("audience",),
    }


def test_when_the_title_is_blank__then_it_is_rejected() -> None:
    assert problems(IncidentIn, incident(title="   "))[0][0] == ("title",)


def test_when_the_jurisdiction_is_unknown__then_it_is_rejected() -> None:
    assert problems(IncidentIn, incident(jurisdictions=["US-CCPA"]))[0][0] == ("jurisdictions", 0)


def test_when_the_audience_is_empty__then_it_is_rejected() -> None:
    assert problems(IncidentIn, incident(audience={}))[0][0] == ("audience",)


def test_when_the_notice_body_is_too_long__then_it_is_rejected() -> None:
    assert problems(IncidentIn, incident(notice={"body": "가" * 2001}))[0][0] == ("notice", "body")


def test_when_a_notice_title_is_over_40_characters__then_it_is_rejected() -> None:
    assert problems(NoticeIn, {"body": "x", "title": "t" * 41})[0][0] == ("title",)


def test_when_an_incident_is_parsed__then_it_is_frozen() -> None:
    parsed = IncidentIn.model_validate(incident())
    with pytest.raises(ValidationError, match="frozen"):
        parsed.severity = "low"  # type: ignore[misc]


def test_when_a_notice_has_emoji__then_the_error_shows_each_offending_character() -> None:
    with pytest.raises(ValidationError) as caught:
        NoticeIn(body="유출 안내 😀 확인하세요 🙏")
    message = str(caught.value)
    assert "'😀' (U+1F600)" in message and "'🙏' (U+1F64F)" in message


def test_when_a_notice_is_over_2000_euc_kr_bytes__then_it_is_refused() -> None:
    NoticeIn(body="가" * 1000)
    with pytest.raises(ValidationError, match="2002 bytes in EUC-KR"):
        NoticeIn(body="가" * 1001)


@pytest.mark.parametrize(
    ("field", "value"),
    [("severity", 1), ("jurisdictions", "KR-PIPA"), ("title", 5)],
)
def test_when_a_value_has_the_wrong_json_type__then_it_is_refused_not_converted(
    field: str, value: Any
) -> None:
    assert problems(IncidentIn, incident(**{field: value}))[0][0] == (field,)


def test_when_a_key_flag_is_a_number__then_it_is_refused_not_taken_as_a_boolean() -> None:
    [(loc, _, _)] = problems(KeyIn, {"name": "k", "scopes": ["admin"], "allow_self_approval": 0})
    assert loc == ("allow_self_approval",)


@pytest.mark.parametrize(
    "when", [1_764_288_000, "1764288000", "2026-11-28", "2026-11-28 09:00:00+09:00"]
)
def test_when_discovered_at_is_not_an_rfc_3339_string__then_it_is_refused(when: Any) -> None:
    [(loc, _, message)] = problems(IncidentIn, incident(discovered_at=when))
    assert loc == ("discovered_at",) and "RFC 3339" in message


@pytest.mark.parametrize("field", ["title", "contact"])
def test_when_the_incident_facts_carry_emoji__then_they_are_refused(field: str) -> None:
    # They fill #{incident_title} and #{contact} in every SMS.
    [(loc, _, message)] = problems(IncidentIn, incident(**{field: "유출 😀"}))
    assert loc == (field,) and "(U+1F600)" in message


def test_when_text_is_over_its_limit_only_by_spaces_around__then_it_is_still_refused() -> None:
    assert IncidentIn.model_validate(incident(title=" 유출 ")).title == "유출"
    [(loc, kind, _)] = problems(IncidentIn, incident(title="x" * 200 + " "))
    assert (loc, kind) == (("title",), "string_too_long")
    assert problems(IncidentIn, incident(title="   "))[0][0] == ("title",)
