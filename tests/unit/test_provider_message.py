"""A notice and a recipient in, the provider message out."""

import dataclasses

import pytest
from pydantic import ValidationError

from alimi.sms_kind import LMS_TITLE_MAX_BYTES, euc_kr_bytes, sms_kind
from alimi_delivery.provider_message import LocalisedNotice, NoticeMessage
from alimi_intake.models import NoticeIn

INCIDENT = {
    "title": "개인정보 유출",
    "status_url": "https://status.example.org/i/abc",
    "contact": "02-1599-0000",
}


def build(
    body: str,
    title: str = "",
    incident: dict[str, str] | None = None,
    template: str = "short_notice",
) -> LocalisedNotice:
    notice = {"template": template, "body": body, "title": title}
    return NoticeMessage.build(notice, incident or INCIDENT).for_locale("ko")


def test_when_the_template_wraps_the_body__then_the_whole_message_is_filled() -> None:
    text = build("#{name}님의 이름이 유출되었습니다.", template="breach_notice").text_for("김민수")
    assert text == (
        "[개인정보 유출]\n김민수님, 개인정보 유출 사고를 알려드립니다.\n\n"
        "김민수님의 이름이 유출되었습니다.\n\n"
        "문의: 02-1599-0000\n자세히 보기: https://status.example.org/i/abc"
    )


def test_when_a_person_reads_english__then_the_english_text_and_words_are_used() -> None:
    notice = NoticeMessage.build(
        {
            "template": "breach_notice",
            "locale": "ko",
            "body": "본문",
            "texts": {"ko": {"body": "본문"}, "en": {"body": "Your name leaked."}},
        },
        INCIDENT,
    )
    english = notice.for_locale("en-GB").text_for("")
    assert english.startswith("[개인정보 유출]\nDear customer, we are writing")
    assert "Your name leaked." in english
    assert notice.for_locale("ja") is notice.for_locale("ko")


def test_when_sent_over_kakao__then_the_parameters_fill_the_approved_text_the_same_way() -> None:
    text = build("#{name}님, #{contact}로 문의하세요.", template="breach_notice")
    parameters = text.kakao_parameters("김민수")
    assert set(parameters) == {"incident_title", "name", "body", "contact", "status_url"}
    assert parameters["body"] == "김민수님, 02-1599-0000로 문의하세요."
    rendered = text.text.text
    for variable, value in parameters.items():
        rendered = rendered.replace("#{" + variable + "}", value)
    assert rendered == text.text_for("김민수")
    [button] = text.kakao_buttons()
    assert button["linkMo"] == INCIDENT["status_url"] and button["name"] == "자세히 보기"


def test_when_built__then_the_incident_facts_are_filled_in() -> None:
    template = build("#{incident_title}: #{status_url} (#{contact})")
    assert template.full == "개인정보 유출: https://status.example.org/i/abc (02-1599-0000)"


def test_when_built__then_the_name_placeholder_is_kept_for_each_recipient() -> None:
    assert build("#{name}님, #{incident_title} 안내").full == "#{name}님, 개인정보 유출 안내"


def test_when_an_incident_fact_is_missing__then_it_is_filled_with_nothing() -> None:
    assert build("[#{contact}]", incident={"title": "t"}).full == "[]"


def test_when_no_title_is_given__then_the_incident_title_is_used() -> None:
    assert build("본문").title == "개인정보 유출"


def test_when_a_title_is_given__then_its_incident_facts_are_filled_in() -> None:
    assert build("본문", title="[안내] #{incident_title}").title == "[안내] 개인정보 유출"


def test_when_a_title_is_longer_than_40_euc_kr_bytes__then_it_is_cut_to_40() -> None:
    title = build("본문", title="가" * 30).title
    assert title == "가" * 20
    assert euc_kr_bytes(title) == LMS_TITLE_MAX_BYTES == 40


def test_when_a_cut_would_split_a_hangul_character__then_the_whole_character_goes() -> None:
    title = build("본문", title="a" + "가" * 25).title
    assert title == "a" + "가" * 19
    assert euc_kr_bytes(title) == 39


def test_when_a_title_is_exactly_40_bytes__then_it_is_kept_whole() -> None:
    assert build("본문", title="a" * 40).title == "a" * 40


def test_when_the_incident_title_is_long__then_the_default_title_is_cut_too() -> None:
    title = build("본문", incident={"title": "유" * 50}).title
    assert title == "유" * 20


def test_when_a_recipient_is_named__then_their_text_has_the_name() -> None:
    template = build("#{name}님, #{incident_title} 안내")
    assert template.text_for("김민수") == "김민수님, 개인정보 유출 안내"


def test_when_a_recipient_has_no_name__then_the_locale_default_stands_in() -> None:
    assert build("#{name}님 안내").text_for("") == "고객님 안내"


def test_when_sent_to_the_provider__then_name_placeholders_use_the_hash_form() -> None:
    template = build("#{name}님, #{incident_title}. #{name}님 확인")
    assert template.provider_body() == "##name##님, 개인정보 유출. ##name##님 확인"


def test_when_the_body_has_no_placeholder__then_the_provider_body_is_the_body() -> None:
    assert build("안내드립니다").provider_body() == "안내드립니다"


def test_when_a_template_is_built__then_it_is_immutable() -> None:
    template = build("x")
    with pytest.raises(dataclasses.FrozenInstanceError):
        template.full = "y"  # type: ignore[misc]


def test_when_a_name_pushes_the_text_over_90_bytes__then_that_recipient_gets_an_lms() -> None:
    template = build("#{name}님 " + "가" * 41)
    assert sms_kind(template.text_for("이")) == "SMS"
    assert sms_kind(template.text_for("김민수")) == "LMS"


def test_when_a_title_uses_the_name_placeholder__then_intake_refuses_it() -> None:
    # The LMS title is one per provider request, shared by every recipient of the
    # batch, so intake must refuse per-person variables there.
    with pytest.raises(ValidationError, match="title is shared by every recipient"):
        NoticeIn(body="본문", title="#{name}님께 안내")
