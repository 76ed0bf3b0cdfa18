"""SMS or LMS by EUC-KR bytes: the one rule intake, its preview and delivery share."""

import pytest

from alimi.sms_kind import (
    LMS_MAX_BYTES,
    SMS_MAX_BYTES,
    cut,
    euc_kr_bytes,
    fits_lms,
    sms_kind,
    unencodable,
)


@pytest.mark.parametrize(("text", "length"), [("", 0), ("abc", 3), ("가", 2), ("가나다", 6)])
def test_when_measured__then_ascii_is_one_byte_and_hangul_two(text: str, length: int) -> None:
    assert euc_kr_bytes(text) == length


def test_when_hangul_and_ascii_mix__then_the_bytes_add_up() -> None:
    assert euc_kr_bytes("안녕 Hi") == 2 * 2 + 3


def test_when_measuring_unencodable_text__then_each_such_character_counts_one_byte() -> None:
    assert euc_kr_bytes("😀") == 1
    assert euc_kr_bytes("가😀나") == 5


def test_when_a_text_is_45_hangul_characters__then_it_is_an_sms() -> None:
    text = "가" * 45
    assert euc_kr_bytes(text) == SMS_MAX_BYTES == 90
    assert sms_kind(text) == "SMS"


def test_when_a_text_is_46_hangul_characters__then_it_is_an_lms() -> None:
    assert sms_kind("가" * 46) == "LMS"


@pytest.mark.parametrize(("length", "kind"), [(0, "SMS"), (90, "SMS"), (91, "LMS"), (2000, "LMS")])
def test_when_a_text_is_ascii__then_90_characters_is_the_sms_limit(length: int, kind: str) -> None:
    assert sms_kind("a" * length) == kind


def test_when_a_text_has_an_emoji__then_it_is_measured_without_raising() -> None:
    assert sms_kind("가" * 44 + "😀") == "SMS"
    assert sms_kind("가" * 45 + "😀") == "LMS"


def test_when_a_text_is_2000_bytes__then_an_lms_carries_it_and_one_more_does_not() -> None:
    assert fits_lms("가" * (LMS_MAX_BYTES // 2))
    assert not fits_lms("가" * (LMS_MAX_BYTES // 2) + "a")


def test_when_cut__then_no_hangul_character_is_split() -> None:
    assert cut("a" + "가" * 25, 40) == "a" + "가" * 19
    assert cut("a" * 40, 40) == "a" * 40


def test_when_text_is_all_encodable__then_nothing_is_reported() -> None:
    assert unencodable("안녕하세요, Alimi! ①") == []


def test_when_text_has_emoji__then_each_is_reported_once_in_order() -> None:
    assert unencodable("안내 😀 확인 🙏 😀") == ["😀", "🙏"]
