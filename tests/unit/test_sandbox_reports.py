"""Suffix ranges and the signed delivery-report format, without a server."""

import json

import pytest

from alimi_sandbox.reports import Channel, report_body
from alimi_sandbox.suffixes import SuffixRanges


@pytest.mark.parametrize(
    ("ranges", "number", "expected"),
    [
        ("7000-9999", "01012347000", True),
        ("7000-9999", "01012349999", True),
        ("7000-9999", "01012346999", False),
        ("0000-0099, 5000", "+821012345000", True),
        ("0000-0099, 5000", "01012340050", True),
        ("0000-0099, 5000", "01012345001", False),
        ("", "01012347000", False),
        ("0000-9999", "123", False),
        ("0000-9999", "0101234567x", False),
    ],
)
def test_when_a_number_is_checked__then_only_its_last_four_digits_count(
    ranges: str, number: str, expected: bool
) -> None:
    assert (number in SuffixRanges.parse(ranges)) is expected


@pytest.mark.parametrize("raw", ["9999-7000", "700-999", "abcd", "7000-", "12345"])
def test_when_a_range_is_malformed__then_it_is_refused(raw: str) -> None:
    with pytest.raises(ValueError):
        SuffixRanges.parse(raw)


def test_when_ranges_are_shown__then_they_read_back_the_same() -> None:
    ranges = SuffixRanges.parse(" 0000-0099 ,5000")
    assert str(ranges) == "0000-0099,5000"
    assert SuffixRanges.parse(str(ranges)) == ranges
    assert str(SuffixRanges.parse("")) == ""


def test_when_a_batch_is_built__then_each_report_has_the_contract_fields() -> None:
    batch = [
        (1.0, "req", 1, "ntc_1:cust-1", "01012345678", False),
        (1.0, "req", 2, "ntc_1:cust-2", "01012347000", True),
    ]
    sms = json.loads(report_body(Channel.SMS, batch, "2025-01-01T00:00:00.000+00:00"))
    assert sms["reports"][0] == {
        "messageId": "req-1",
        "recipientGroupingKey": "ntc_1:cust-1",
        "recipientNo": "01012345678",
        "resultCode": "1000",
        "status": "DELIVERED",
        "resultMessage": "Delivered",
        "deliveredAt": "2025-01-01T00:00:00.000+00:00",
    }
    assert (sms["reports"][1]["resultCode"], sms["reports"][1]["status"]) == (
        "3015",
        "UNDELIVERED",
    )
    kakao = json.loads(report_body(Channel.KAKAO, batch, "x"))
    assert kakao["reports"][1]["resultCode"] == "3016"
