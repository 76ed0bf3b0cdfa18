"""Phone numbers: E.164, the kinds messages reach, masking, the lookup hash, the national form."""

import hashlib
import hmac

import pytest

from alimi.phone import (
    InvalidPhone,
    lookup_hash,
    mask,
    mask_in_text,
    national,
    normalise,
    normalise_recipient,
)


@pytest.mark.parametrize(
    "raw",
    [
        "010-1234-5678",
        "01012345678",
        "010 1234 5678",
        "010.1234.5678",
        "(010) 1234-5678",
        "  010-1234-5678  ",
        "+821012345678",
        "+82 10-1234-5678",
        "0082-10-1234-5678",
    ],
)
def test_when_a_korean_mobile_number_is_written_any_usual_way__then_it_becomes_e164(
    raw: str,
) -> None:
    assert normalise(raw) == "+821012345678"


def test_when_a_national_number_is_given_another_region__then_that_regions_code_is_used() -> None:
    assert normalise("0412 345 678", default_region="AU") == "+61412345678"


def test_when_a_foreign_international_number_is_given__then_it_keeps_its_own_country_code() -> None:
    assert normalise("+1 (415) 555-0123") == "+14155550123"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("001-1-415-555-0123", "+14155550123"),  # 001: a Korean carrier's international prefix
        ("00700 82 10 1234 5678", "+821012345678"),
        ("0082 10 1234 5678", "+821012345678"),  # 00: the usual international prefix
        ("02-123-4567", "+8221234567"),  # a Seoul landline
        ("+44 20 7946 0958", "+442079460958"),
    ],
)
def test_when_a_number_is_dialled_with_a_prefix_or_is_a_landline__then_it_becomes_e164(
    raw: str, expected: str
) -> None:
    assert normalise(raw) == expected


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("hello", "not a phone number"),
        ("", "not a phone number"),
        ("+", "not a phone number"),
        ("010-1234-567a", "not a phone number"),  # letters are refused, not dropped
        ("010 1234 5678 ext. 12", "not a phone number"),
        ("+8210", "too short for a phone number in KR"),
        ("+1 415 555", "too short for a phone number in US"),
        ("+8210123456789012", "too long for a phone number in KR"),
        ("010-1234-5678-9012", "too long for a phone number in KR"),
        ("12345", "not a valid phone number in KR"),
        ("010-123", "not a valid phone number in KR"),
        ("010-5970-0970", "not a valid phone number in KR"),  # 0105 97x is not allocated
        ("+0101234567", "unknown country calling code"),
        ("+999 1234567", "unknown country calling code"),
    ],
)
def test_when_the_text_is_not_a_valid_phone_number__then_the_error_says_why(
    raw: str, reason: str
) -> None:
    with pytest.raises(InvalidPhone) as caught:
        normalise(raw)
    assert str(caught.value).startswith(reason)
    assert str(caught.value).endswith("expected E.164 like +821012345678 or 010-1234-5678")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("010-1234-5678", "+821012345678"),
        ("0082 10 1234 5678", "+821012345678"),
        ("+44 7400 123456", "+447400123456"),  # a UK mobile
        ("0412 345 678", "+61412345678"),  # national, of the default region given below
        ("+1 (415) 555-0123", "+14155550123"),  # US numbers do not tell mobile from landline
    ],
)
def test_when_a_recipient_number_is_mobile_or_may_be__then_it_becomes_e164(
    raw: str, expected: str
) -> None:
    region = "AU" if raw.startswith("0412") else "KR"
    assert normalise_recipient(raw, default_region=region) == expected


@pytest.mark.parametrize(
    ("raw", "kind"),
    [
        ("+82-2-123-4567", "a landline in KR"),
        ("02-123-4567", "a landline in KR"),
        ("080-123-4567", "a toll-free number in KR"),
        ("1588-1234", "a representative number (UAN) in KR"),
        ("070-1234-5678", "an internet phone (VoIP) number in KR"),
        ("050-1234-5678", "a forwarding (personal) number in KR"),
        ("060-234-5678", "a premium-rate number in KR"),
    ],
)
def test_when_a_recipient_number_cannot_receive_messages__then_the_refusal_names_its_kind(
    raw: str, kind: str
) -> None:
    assert normalise(raw)  # a valid number all the same
    with pytest.raises(InvalidPhone) as caught:
        normalise_recipient(raw)
    assert str(caught.value) == (
        f"{kind}, which cannot receive text or KakaoTalk messages:"
        " expected a mobile number like +821012345678 or 010-1234-5678"
    )


def test_when_a_foreign_landline_is_refused__then_the_example_is_its_countrys_mobile() -> None:
    with pytest.raises(InvalidPhone) as caught:
        normalise_recipient("+44 20 7946 0958")
    assert str(caught.value).startswith("a landline in GB, which cannot receive")
    assert str(caught.value).endswith("expected a mobile number like +447400123456")


def test_when_a_recipient_number_is_not_valid__then_the_reason_is_normalises() -> None:
    with pytest.raises(InvalidPhone, match=r"^not a valid phone number in KR"):
        normalise_recipient("010-5970-0970")


def test_when_a_number_is_invalid__then_the_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        normalise("hello")


def test_when_an_e164_number_is_masked__then_only_country_code_and_last_four_digits_show() -> None:
    assert mask("+821012345678") == "+82******5678"


def test_when_a_national_number_is_masked__then_separators_go_and_two_leading_digits_show() -> None:
    assert mask("010-1234-5678") == "01*****5678"


def test_when_a_masked_number_keeps_its_length__then_numbers_of_different_lengths_differ() -> None:
    assert len(mask("+821012345678")) == len("+821012345678")
    assert mask("+821012345678") != mask("+8211234567")


@pytest.mark.parametrize("short", ["12345", "123456", "+1234"])
def test_when_a_number_is_six_characters_or_fewer__then_everything_is_masked(short: str) -> None:
    assert mask(short) == "*" * len(short)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("call 010-1234-5678 now", "call 01*****5678 now"),
        ("call 01012345678.", "call 01*****5678."),
        ("call 010.1234.5678", "call 01*****5678"),
        ("call 010 1234 5678", "call 01*****5678"),
        ("office 02-123-4567", "office 02***4567"),
        ("to +821012345678,", "to +82******5678,"),
        ("to +82 10-1234-5678", "to +82******5678"),
        ("to +1 415 555 0123", "to +14*****0123"),
    ],
)
def test_when_text_contains_a_phone_number__then_it_is_masked_in_place(
    text: str, expected: str
) -> None:
    assert mask_in_text(text) == expected


def test_when_text_contains_several_numbers__then_each_is_masked() -> None:
    masked = mask_in_text("010-1111-2222 and 010-3333-4444")
    assert masked == "01*****2222 and 01*****4444"


@pytest.mark.parametrize(
    "text",
    [
        "no numbers here",
        "order 2010123456789",
        "batch_01012345678",
        "2026-11-28T09:00:00+00:00",
        "notice ntc_0a1b2c3d4e",
        "count 12345",
    ],
)
def test_when_text_has_no_phone_number__then_it_is_unchanged(text: str) -> None:
    assert mask_in_text(text) == text


def test_when_the_area_code_is_in_parentheses__then_the_number_is_still_masked() -> None:
    assert "1234" not in mask_in_text("call (02) 1234-5678")


def test_when_the_same_number_is_hashed_with_the_same_key__then_the_hash_is_stable() -> None:
    assert lookup_hash("+821012345678", b"k") == lookup_hash("+821012345678", b"k")


def test_when_the_hash_is_computed__then_it_is_hmac_sha256_of_the_number() -> None:
    expected = hmac.new(b"key", b"+821012345678", hashlib.sha256).hexdigest()
    assert lookup_hash("+821012345678", b"key") == expected


def test_when_the_key_differs__then_the_hash_differs() -> None:
    assert lookup_hash("+821012345678", b"one") != lookup_hash("+821012345678", b"two")


def test_when_the_number_differs__then_the_hash_differs() -> None:
    assert lookup_hash("+821012345678", b"k") != lookup_hash("+821012345679", b"k")


def test_when_a_number_is_hashed__then_the_number_does_not_appear_in_the_hash() -> None:
    digest = lookup_hash("+821012345678", b"k")
    assert len(digest) == 64
    assert "1012345678" not in digest


def test_when_a_korean_number_is_made_national__then_the_trunk_zero_is_restored() -> None:
    assert national("+821012345678") == ("82", "01012345678")


def test_when_a_seoul_landline_is_made_national__then_it_keeps_its_area_code() -> None:
    assert national("+8221234567") == ("82", "021234567")


def test_when_the_number_is_foreign__then_no_country_code_and_all_digits_come_back() -> None:
    assert national("+14155550123") == ("", "14155550123")


def test_when_another_home_country_is_given__then_its_numbers_get_the_trunk_zero() -> None:
    assert national("+61412345678", country_code="61") == ("61", "0412345678")
