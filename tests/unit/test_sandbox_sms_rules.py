"""The request rules of the simulated SMS gateway, without a server."""

from typing import Any

import pytest

from alimi_sandbox.nhn_api import (
    INVALID_RECIPIENT_COUNT,
    MALFORMED,
    Rejection,
    is_plausible_number,
)
from alimi_sandbox.sms_simulator import (
    INVALID_LMS_CONTENT,
    INVALID_SMS_BODY,
    UNENCODABLE_TEXT,
    UNREGISTERED_SENDER,
    MessageType,
    Recipient,
    euc_kr_length,
    parse_send_request,
)

SENDER = "0215990000"


def payload(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "body": "hello",
        "sendNo": SENDER,
        "recipientList": [{"recipientNo": "01012345678"}],
    }
    return base | overrides


def rejection_of(body: Any, message_type: MessageType = MessageType.SMS) -> Rejection:
    with pytest.raises(Rejection) as caught:
        parse_send_request(body, message_type, {SENDER})
    return caught.value


def test_when_text_is_hangul__then_each_syllable_counts_two_bytes() -> None:
    assert euc_kr_length("가나다", "body") == 6
    assert euc_kr_length("abc 가", "body") == 6


def test_when_text_has_an_emoji__then_it_is_rejected_as_unencodable() -> None:
    with pytest.raises(Rejection) as caught:
        euc_kr_length("안녕 😀", "body")
    assert caught.value.result_code == UNENCODABLE_TEXT


@pytest.mark.parametrize("number", ["01012345678", "+821012345678", "12345678", "1" * 15])
def test_when_number_is_8_to_15_digits__then_it_is_plausible(number: str) -> None:
    assert is_plausible_number(number)


FULLWIDTH_DIGITS = "".join(chr(0xFF10 + int(d)) for d in "01012345678")


@pytest.mark.parametrize(
    "number", ["", "1234567", "1" * 16, "010-1234-5678", "++821012345678", FULLWIDTH_DIGITS]
)
def test_when_number_is_not_8_to_15_ascii_digits__then_it_is_implausible(number: str) -> None:
    assert not is_plausible_number(number)


def test_when_request_is_valid__then_recipients_get_defaults() -> None:
    send = parse_send_request(
        payload(recipientList=[{"recipientNo": "01012345678", "recipientGroupingKey": "r-1"}]),
        MessageType.SMS,
        {SENDER},
    )
    assert send.type is MessageType.SMS
    assert send.title is None
    assert send.recipients == [Recipient("01012345678", "82", "r-1")]


def test_when_sms_body_is_45_hangul__then_it_fits() -> None:
    send = parse_send_request(payload(body="가" * 45), MessageType.SMS, {SENDER})
    assert send.body == "가" * 45


@pytest.mark.parametrize("body", ["가" * 46, "a" * 91, ""])
def test_when_sms_body_is_empty_or_over_90_bytes__then_2001_points_to_mms(body: str) -> None:
    rejection = rejection_of(payload(body=body))
    assert rejection.result_code == INVALID_SMS_BODY
    assert rejection.status == 200
    assert "mms" in rejection.message


def test_when_lms_body_is_1000_hangul__then_it_fits() -> None:
    send = parse_send_request(payload(body="가" * 1000, title="제목"), MessageType.LMS, {SENDER})
    assert send.title == "제목"


@pytest.mark.parametrize(
    ("body", "title"),
    [("가" * 1001, "제목"), ("", "제목"), ("본문", "가" * 21), ("본문", "")],
)
def test_when_lms_body_or_title_is_out_of_range__then_2002(body: str, title: str) -> None:
    rejection = rejection_of(payload(body=body, title=title), MessageType.LMS)
    assert rejection.result_code == INVALID_LMS_CONTENT


def test_when_lms_title_is_20_hangul__then_it_fits() -> None:
    send = parse_send_request(payload(title="가" * 20), MessageType.LMS, {SENDER})
    assert send.title == "가" * 20


@pytest.mark.parametrize("send_no", ["0299999999", "", None])
def test_when_sender_is_not_registered__then_2000(send_no: str | None) -> None:
    assert rejection_of(payload(sendNo=send_no)).result_code == UNREGISTERED_SENDER


@pytest.mark.parametrize("count", [0, 1001])
def test_when_recipient_count_is_out_of_range__then_2003(count: int) -> None:
    recipients = [{"recipientNo": "01012345678"}] * count
    assert rejection_of(payload(recipientList=recipients)).result_code == INVALID_RECIPIENT_COUNT


def test_when_recipients_are_1000__then_they_are_accepted() -> None:
    recipients = [{"recipientNo": f"010{i:08d}"} for i in range(1000)]
    send = parse_send_request(payload(recipientList=recipients), MessageType.SMS, {SENDER})
    assert len(send.recipients) == 1000


def test_when_title_cannot_be_encoded__then_2004() -> None:
    rejection = rejection_of(payload(title="😀"), MessageType.LMS)
    assert rejection.result_code == UNENCODABLE_TEXT
    assert "title" in rejection.message


@pytest.mark.parametrize(
    "body",
    [
        [],
        "text",
        payload(body=12),
        payload(recipientList="01012345678"),
        payload(recipientList=["01012345678"]),
        payload(recipientList=[{"countryCode": "82"}]),
        payload(recipientList=[{"recipientNo": "01012345678", "countryCode": 82}]),
    ],
)
def test_when_body_has_the_wrong_shape__then_malformed_400(body: Any) -> None:
    rejection = rejection_of(body)
    assert rejection.result_code == MALFORMED
    assert rejection.status == 400


def test_when_recipients_carry_template_parameters__then_each_text_is_rendered_and_measured():
    payload = {
        "body": "##name##님 안내",
        "sendNo": "0215990000",
        "recipientList": [
            {"recipientNo": "01012345678", "templateParameter": {"name": "김민준"}},
            {"recipientNo": "01012345679", "templateParameter": {"name": "이" * 50}},
        ],
    }
    with pytest.raises(Rejection) as caught:
        parse_send_request(payload, MessageType.SMS, {"0215990000"})
    assert caught.value.result_code == INVALID_SMS_BODY
    payload["recipientList"].pop()
    send = parse_send_request(payload, MessageType.SMS, {"0215990000"})
    assert send.recipients[0].render(send.body) == "김민준님 안내"
