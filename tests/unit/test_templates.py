"""The template registry, and intake's check that a notice's template can be filled."""

from typing import Any

import pytest
from pydantic import ValidationError

from alimi import render, templates
from alimi_intake.models import IncidentIn, SubjectIn, template_problems


def incident(notice: dict[str, Any] | None = None, **changes: Any) -> IncidentIn:
    return IncidentIn.model_validate(
        {
            "title": "회원정보 유출",
            "severity": "high",
            "discovered_at": "2026-11-28T09:00:00+09:00",
            "contact": "02-1599-0000",
            "notice": notice or {"body": "이름과 전화번호가 유출되었습니다."},
            "audience": {"subject_ids": ["s1"]},
        }
        | changes
    )


def test_every_template_has_korean_and_english_with_distinct_kakao_codes() -> None:
    codes = [t.kakao_code for tpl in templates.REGISTRY.values() for t in tpl.locales.values()]
    assert len(codes) == len(set(codes))
    for tpl in templates.REGISTRY.values():
        assert {"ko", "en"} <= set(tpl.locales)
        for text in tpl.locales.values():
            assert "body" in text.variables
            assert set(text.variables) <= {"body", "name", *templates.FACTS}


def test_the_kakao_registration_lists_each_locale_text_under_its_code() -> None:
    registered = templates.kakao_templates()
    breach_ko = templates.REGISTRY["breach_notice"].text("ko")
    assert registered[breach_ko.kakao_code] == {"content": breach_ko.text, "buttons": 1}


def test_when_the_incident_has_every_fact__then_the_notice_can_be_filled() -> None:
    assert template_problems(incident()) == []


def test_when_the_template_needs_a_contact_the_incident_lacks__then_it_is_named() -> None:
    [problem] = template_problems(incident(contact=""))
    assert problem["field"] == "contact"
    assert "needs #{contact}" in problem["message"]


def test_when_a_template_without_contact_is_chosen__then_no_contact_is_needed() -> None:
    notice = {"template": "progress_update", "body": "조사가 끝났습니다."}
    assert template_problems(incident(notice, contact="")) == []


def test_when_a_translation_has_no_template_text__then_its_locale_is_named() -> None:
    notice = {"body": "본문", "translations": {"ja": {"body": "本文"}}}
    [problem] = template_problems(incident(notice))
    assert problem["field"] == "notice.translations.ja"
    assert "has no 'ja' text" in problem["message"]


def test_when_the_whole_message_exceeds_an_lms__then_the_body_is_named() -> None:
    [problem] = template_problems(incident({"body": "가" * 990}))
    assert problem["field"] == "notice.body"
    assert "an LMS carries at most 2000" in problem["message"]


def test_when_the_whole_message_exceeds_an_alimtalk__then_the_body_is_named() -> None:
    [problem] = template_problems(incident({"body": "a" * 1500}))
    assert "an AlimTalk message carries at most 1000" in problem["message"]


def test_when_an_unknown_template_is_named__then_validation_lists_the_known_ones() -> None:
    with pytest.raises(ValidationError, match="unknown template 'nope'; known: breach_notice"):
        incident({"body": "x", "template": "nope"})


def test_when_a_notice_repeats_a_channel__then_it_is_refused() -> None:
    with pytest.raises(ValidationError, match="lists a channel twice"):
        incident({"body": "x", "channels": ["sms", "sms"]})


def test_when_a_subject_lists_channels__then_they_are_kept_in_order() -> None:
    subject = SubjectIn(external_id="s1", channels=["sms", "kakao"], kakao_reachable=False)
    assert (subject.channels, subject.kakao_reachable) == (["sms", "kakao"], False)
    with pytest.raises(ValidationError):
        SubjectIn(external_id="s1", channels=["email"])  # type: ignore[list-item]


def test_when_composed__then_only_the_name_is_left_to_fill() -> None:
    text = templates.REGISTRY["breach_notice"].text("en")
    facts = {"incident_title": "T", "status_url": "https://s", "contact": "C"}
    whole = templates.compose(text, body="Hello #{name} via #{contact}", facts=facts)
    assert render.variables(whole) == ["name"]
    assert "Hello #{name} via C" in whole
