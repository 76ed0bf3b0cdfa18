"""Typed, versioned bus messages and the parser that refuses anything it cannot trust."""

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from alimi.messages import DeliveryBatch, InvalidMessage, NoticeApproved, Recipient, parse

APPROVED_AT = datetime(2026, 11, 28, 0, 30, tzinfo=UTC)


def approved() -> NoticeApproved:
    return NoticeApproved(notice_id="ntc_1", incident_id="inc_1", approved_at=APPROVED_AT)


def batch() -> DeliveryBatch:
    return DeliveryBatch(
        batch_id="ntc_1:sms:00000001",
        notice_id="ntc_1",
        incident_id="inc_1",
        channel="sms",
        recipients=(
            Recipient(subject_id="s1", phone="+821012345678", name="김민수"),
            Recipient(subject_id="s2", phone="+821098765432", also_subject_ids=("s3", "s4")),
        ),
    )


def body_of(message: Any, **changes: Any) -> bytes:
    data = json.loads(message.to_bytes())
    data.update(changes)
    return json.dumps(data).encode()


def test_when_a_notice_approved_is_serialised__then_it_parses_back_equal() -> None:
    message = approved()
    parsed = parse(message.to_bytes(), NoticeApproved)
    assert parsed == message
    assert parsed.approved_at == APPROVED_AT


def test_when_a_delivery_batch_is_serialised__then_it_parses_back_equal() -> None:
    message = batch()
    parsed = parse(message.to_bytes(), DeliveryBatch)
    assert parsed == message
    assert parsed.recipients[1].also_subject_ids == ("s3", "s4")
    assert parsed.recipients[0].name == "김민수"


def test_when_a_message_is_serialised__then_it_carries_its_kind_and_version() -> None:
    assert json.loads(approved().to_bytes())["kind"] == "notice.approved"
    data = json.loads(batch().to_bytes())
    assert (data["kind"], data["v"]) == ("delivery.batch", 1)


def test_when_a_recipient_is_built__then_defaults_are_empty_name_korean_and_no_others() -> None:
    r = Recipient(subject_id="s1", phone="+821012345678")
    assert (r.name, r.locale, r.also_subject_ids) == ("", "ko", ())


def test_when_the_kind_is_unknown__then_invalid_message_names_the_known_kinds() -> None:
    with pytest.raises(InvalidMessage) as caught:
        parse(body_of(approved(), kind="notice.deleted"), NoticeApproved)
    text = str(caught.value)
    assert "notice.deleted" in text
    assert "notice.approved" in text and "delivery.batch" in text


def test_when_the_kind_is_missing__then_invalid_message_says_so() -> None:
    with pytest.raises(InvalidMessage, match="discriminator 'kind'"):
        parse(b'{"v": 1, "notice_id": "n"}', NoticeApproved)


def test_when_the_version_is_unknown__then_invalid_message_names_the_v_field() -> None:
    with pytest.raises(InvalidMessage) as caught:
        parse(body_of(approved(), v=2), NoticeApproved)
    assert str(caught.value).startswith("notice.approved.v: ")
    assert "1" in str(caught.value)


def test_when_a_field_is_not_in_the_schema__then_invalid_message_names_it() -> None:
    with pytest.raises(InvalidMessage, match=r"notice\.approved\.surprise: Extra inputs"):
        parse(body_of(approved(), surprise=True), NoticeApproved)


def test_when_a_recipient_has_an_invalid_phone__then_invalid_message_points_at_it() -> None:
    data = json.loads(batch().to_bytes())
    data["recipients"][0]["phone"] = "010-1234-5678"
    with pytest.raises(InvalidMessage, match=r"delivery\.batch\.recipients\.0\.phone: "):
        parse(json.dumps(data).encode(), DeliveryBatch)


def test_when_a_batch_has_no_recipients__then_it_is_invalid() -> None:
    with pytest.raises(InvalidMessage, match="recipients"):
        parse(body_of(batch(), recipients=[]), DeliveryBatch)


def test_when_the_channel_is_unknown__then_it_is_invalid() -> None:
    with pytest.raises(InvalidMessage, match=r"delivery\.batch\.channel: "):
        parse(body_of(batch(), channel="fax"), DeliveryBatch)


def test_when_several_fields_are_bad__then_the_first_is_named_and_the_problems_counted() -> None:
    with pytest.raises(InvalidMessage, match=r"\(2 problem\(s\)\)$"):
        parse(body_of(approved(), notice_id="", incident_id=""), NoticeApproved)


@pytest.mark.parametrize("body", [b"not json", b"{", b"", b"\xff\xfe"])
def test_when_the_body_is_not_json__then_invalid_message_says_invalid_json(body: bytes) -> None:
    with pytest.raises(InvalidMessage, match=r"^body: Invalid JSON"):
        parse(body, NoticeApproved)


def test_when_the_body_is_json_but_not_an_object__then_it_is_invalid() -> None:
    with pytest.raises(InvalidMessage, match=r"^body: Input should be an object"):
        parse(b"[1, 2]", NoticeApproved)


def test_when_the_message_is_of_another_kind__then_invalid_message_names_both() -> None:
    with pytest.raises(InvalidMessage) as caught:
        parse(approved().to_bytes(), DeliveryBatch)
    assert str(caught.value) == "expected DeliveryBatch, got kind 'notice.approved'"


def test_when_parsing_fails__then_the_validation_error_is_not_chained() -> None:
    with pytest.raises(InvalidMessage) as caught:
        parse(b"nope", NoticeApproved)
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__


def test_when_invalid_message_is_raised__then_it_is_a_value_error() -> None:
    assert issubclass(InvalidMessage, ValueError)


def test_when_a_message_field_is_assigned__then_it_is_refused() -> None:
    message = approved()
    with pytest.raises(ValidationError, match="frozen"):
        message.notice_id = "other"  # type: ignore[misc]
    assert message.notice_id == "ntc_1"


def test_when_a_recipient_field_is_assigned__then_it_is_refused() -> None:
    recipient = batch().recipients[0]
    with pytest.raises(ValidationError, match="frozen"):
        recipient.phone = "+821099999999"  # type: ignore[misc]


def test_when_a_message_is_frozen__then_it_can_be_hashed_and_compared() -> None:
    assert hash(approved()) == hash(approved())
