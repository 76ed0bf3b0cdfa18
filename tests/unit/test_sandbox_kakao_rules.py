"""The AlimTalk rules of the sandbox, without a server: templates, outcomes, volume."""

from typing import Any

import pytest

from alimi_sandbox.behaviour import Behaviour
from alimi_sandbox.kakao_simulator import (
    INVALID_SENDER_KEY,
    NOT_KAKAO_USER,
    TEMPLATE_MISMATCH,
    TEMPLATE_NOT_FOUND,
    UNCERTAIN,
    KakaoRecipient,
    Template,
    TemplateMismatch,
    VolumeWindow,
    fill_template,
    parse_alimtalk_request,
    recipient_outcome,
)
from alimi_sandbox.nhn_api import INVALID_RECIPIENT_COUNT, MALFORMED, Rejection
from alimi_sandbox.suffixes import SuffixRanges

SENDER_KEY = "sender-key"
NOTICE = Template("#{name}님, #{summary} #{name}", buttons=1)
TEMPLATES = {"NOTICE": NOTICE}


def payload(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "senderKey": SENDER_KEY,
        "templateCode": "NOTICE",
        "recipientList": [{"recipientNo": "01012345678", "templateParameter": {"name": "김"}}],
    }
    return base | overrides


def rejection_of(body: Any) -> Rejection:
    with pytest.raises(Rejection) as caught:
        parse_alimtalk_request(body, SENDER_KEY, TEMPLATES)
    return caught.value


def test_when_every_variable_is_given__then_each_placeholder_is_filled() -> None:
    text = fill_template(NOTICE, {"name": "김민준", "summary": "안내", "extra": "ignored"})
    assert text == "김민준님, 안내 김민준"


def test_when_a_variable_is_missing__then_the_mismatch_names_it() -> None:
    with pytest.raises(TemplateMismatch, match="summary"):
        fill_template(NOTICE, {"name": "김민준"})


def test_when_a_template_has_no_placeholders__then_it_is_sent_as_is() -> None:
    assert fill_template(Template("hello"), {}) == "hello"


def test_when_the_sender_key_is_wrong__then_3001() -> None:
    assert rejection_of(payload(senderKey="other")).result_code == INVALID_SENDER_KEY


def test_when_the_template_code_is_unknown__then_3003_with_http_200() -> None:
    rejection = rejection_of(payload(templateCode="NOPE"))
    assert (rejection.result_code, rejection.status) == (TEMPLATE_NOT_FOUND, 200)
    assert rejection.message == "template not found"


@pytest.mark.parametrize("count", [0, 1001])
def test_when_recipient_count_is_out_of_range__then_2003(count: int) -> None:
    recipients = [{"recipientNo": "01012345678"}] * count
    assert rejection_of(payload(recipientList=recipients)).result_code == INVALID_RECIPIENT_COUNT


@pytest.mark.parametrize(
    "recipient",
    [
        {"recipientNo": 1012345678},
        {"recipientNo": "01012345678", "templateParameter": {"name": 1}},
        {"recipientNo": "01012345678", "buttons": [{"type": "WL", "name": "x"}]},
        {"recipientNo": "01012345678", "buttons": [{"ordering": 1, "type": "WL", "name": "x"}]},
    ],
)
def test_when_a_recipient_has_the_wrong_shape__then_malformed_400(recipient: Any) -> None:
    rejection = rejection_of(payload(recipientList=[recipient]))
    assert (rejection.result_code, rejection.status) == (MALFORMED, 400)


def recipient(number: str = "01012345678", **extra: Any) -> KakaoRecipient:
    return KakaoRecipient(number, {"name": "김", "summary": "안내"}, "key-1", **extra)


def test_when_parameters_fit__then_the_recipient_succeeds_with_the_rendered_text() -> None:
    assert recipient_outcome(recipient(), NOTICE, Behaviour()) == (0, "SUCCESS", "김님, 안내 김")


def test_when_parameters_leave_a_placeholder__then_3011() -> None:
    short = KakaoRecipient("01012345678", {"name": "김"})
    code, message, text = recipient_outcome(short, NOTICE, Behaviour())
    assert (code, text) == (TEMPLATE_MISMATCH, None)
    assert message.startswith("template mismatch")


def test_when_button_count_differs_from_the_template__then_3011() -> None:
    button = {"ordering": 1, "type": "WL", "name": "a", "linkMo": "https://x"}
    two = recipient(buttons=(button, button | {"ordering": 2}))
    assert recipient_outcome(two, NOTICE, Behaviour())[0] == TEMPLATE_MISMATCH
    assert recipient_outcome(recipient(buttons=(button,)), NOTICE, Behaviour())[0] == 0


@pytest.mark.parametrize(
    ("number", "expected"),
    [("01012346999", 0), ("01012347000", NOT_KAKAO_USER), ("01012345050", UNCERTAIN)],
)
def test_when_the_number_ends_in_a_configured_range__then_that_outcome(
    number: str, expected: int
) -> None:
    behaviour = Behaviour(
        kakao_not_user_suffixes=SuffixRanges.parse("7000-9999"),
        kakao_uncertain_suffixes=SuffixRanges.parse("5000-5099"),
    )
    assert recipient_outcome(recipient(number), NOTICE, behaviour)[0] == expected


def test_when_the_volume_limit_is_reached__then_requests_wait_for_the_next_second() -> None:
    window = VolumeWindow()
    assert [window.admit(2, now=10.0) for _ in range(3)] == [True, True, False]
    assert window.admit(2, now=11.0)
    assert all(window.admit(0, now=11.0) for _ in range(10))


@pytest.mark.parametrize(
    ("value", "reason"),
    [([], "object"), ({"content": ""}, "content"), ({"content": "x", "buttons": 9}, "buttons")],
)
def test_when_a_template_definition_is_invalid__then_the_error_says_why(
    value: Any, reason: str
) -> None:
    with pytest.raises(ValueError, match=reason):
        Template.from_json(value)
