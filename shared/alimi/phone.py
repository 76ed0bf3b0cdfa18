"""Phone numbers: normalisation to E.164, masking, the keyed lookup hash, encryption at rest.

:func:`normalise` takes any valid number; :func:`normalise_recipient` only one
that receives messages (a mobile number), as a subject's must be.

Only masked numbers ever leave the component that needs the real one: logs,
receipts and metrics use :func:`mask`. In ``subjects`` the number is stored
encrypted (:func:`seal`), bound to the subject's id; only the segmenter opens
it (:func:`unseal`), to put it in delivery batches.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import re
from typing import Any

import phonenumbers

from alimi.crypto import Keyring

# "+" and 8 to 15 digits: the E.164 shape, country code first.
E164 = re.compile(r"^\+[1-9]\d{7,14}$")
_SEPARATORS = re.compile(r"[\s().-]")
# What a written phone number may hold; letters (vanity numbers, "ext.") are refused.
_PHONE_CHARACTERS = re.compile(r"^[\d\s+().\-/]+$")
# National numbers (those without "+") are taken as Korean unless told otherwise.
DEFAULT_REGION = "KR"

# Anything in free text that looks like a phone number: international, or a
# Korean mobile/landline number with or without separators.
PHONE_IN_TEXT = re.compile(
    r"(?<![\w+])(?:\+[1-9](?:[\s.-]?\d){7,14}"
    r"|\(?0(?:1[016789]|[2-6]\d?)\)?[\s.-]?\d{3,4}[\s.-]?\d{4})(?!\w)"
)


# The field name bound into each encrypted number (with the subject's id).
SUBJECT_PHONE = "subjects.phone"


class InvalidPhone(ValueError):
    pass


def normalise(raw: str, default_region: str = DEFAULT_REGION) -> str:
    """Return ``raw`` as E.164 (``+821012345678``) or raise :class:`InvalidPhone`.

    Parsed and checked with ``phonenumbers`` (Google's libphonenumber data):
    international numbers with ``+`` (or ``00``), and national numbers of
    ``default_region`` (an ISO 3166 code, Korea unless told). Only numbers valid
    for their region pass; the error says why one does not.
    """
    return _e164(_valid_number(raw, default_region))


# The kinds of number that receive SMS and KakaoTalk messages. FIXED_LINE_OR_MOBILE is
# a number of a country whose numbering does not tell the two apart (the US, Canada).
RECIPIENT_TYPES = frozenset(
    {phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE}
)
# Every other kind, as the refusal names it (Korean prefixes: 080, 060, 070, 050, 15xx).
_KINDS = {
    phonenumbers.PhoneNumberType.FIXED_LINE: "a landline",
    phonenumbers.PhoneNumberType.TOLL_FREE: "a toll-free number",
    phonenumbers.PhoneNumberType.PREMIUM_RATE: "a premium-rate number",
    phonenumbers.PhoneNumberType.SHARED_COST: "a shared-cost number",
    phonenumbers.PhoneNumberType.VOIP: "an internet phone (VoIP) number",
    phonenumbers.PhoneNumberType.PERSONAL_NUMBER: "a forwarding (personal) number",
    phonenumbers.PhoneNumberType.PAGER: "a pager number",
    phonenumbers.PhoneNumberType.UAN: "a representative number (UAN)",
    phonenumbers.PhoneNumberType.VOICEMAIL: "a voicemail access number",
}


def normalise_recipient(raw: str, default_region: str = DEFAULT_REGION) -> str:
    """:func:`normalise`, for a number messages are sent to: only a mobile number passes.

    A number valid in its region but of another kind (a landline, a toll-free
    or representative number, VoIP, forwarding, ...) cannot receive SMS or
    KakaoTalk messages; :class:`InvalidPhone` names its kind and region.
    """
    number = _valid_number(raw, default_region)
    kind = phonenumbers.number_type(number)
    if kind in RECIPIENT_TYPES:
        return _e164(number)
    region = phonenumbers.region_code_for_number(number) or phonenumbers.UNKNOWN_REGION
    what = _KINDS.get(kind, "a number of no known kind")
    raise InvalidPhone(
        f"{what} in {region}, which cannot receive text or KakaoTalk messages:"
        f" expected a mobile number like {_mobile_example(region)}"
    )


def _mobile_example(region: str) -> str:
    if region == DEFAULT_REGION:
        return "+821012345678 or 010-1234-5678"
    example = phonenumbers.example_number_for_type(region, phonenumbers.PhoneNumberType.MOBILE)
    return _e164(example) if example is not None else "+821012345678"


def _valid_number(raw: str, default_region: str) -> phonenumbers.PhoneNumber:
    """``raw`` parsed, if it is a valid number of its region; else :class:`InvalidPhone`."""
    text = raw.strip()
    if not text or not _PHONE_CHARACTERS.match(text):
        raise InvalidPhone(_why("not a phone number (only digits, spaces, +, -, ., / and ( ))"))
    compact = _SEPARATORS.sub("", text)
    if compact.startswith("00"):
        # "0082 10-…": 00 as the international prefix, as dialled from most countries
        # (Korea's own, such as 001 or 00700, are tried first, as written).
        with contextlib.suppress(InvalidPhone):
            as_written = _parse(text, default_region)
            if phonenumbers.is_valid_number(as_written):
                return as_written
        text = "+" + compact[2:]
    number = _parse(text, default_region)
    if not phonenumbers.is_valid_number(number):
        raise InvalidPhone(_why(_invalid_reason(number)))
    return number


def _e164(number: phonenumbers.PhoneNumber) -> str:
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _why(reason: str) -> str:
    return f"{reason}: expected E.164 like +821012345678 or 010-1234-5678"


def _parse(text: str, default_region: str) -> phonenumbers.PhoneNumber:
    try:
        return phonenumbers.parse(text, default_region)
    except phonenumbers.NumberParseException as exc:
        reason = _PARSE_ERRORS.get(exc.error_type, "not a phone number")
        raise InvalidPhone(_why(reason)) from None


def _invalid_reason(number: phonenumbers.PhoneNumber) -> str:
    # An invalid number has no region of its own; its country code's main one stands in.
    code = number.country_code or 0
    region = phonenumbers.region_code_for_number(
        number
    ) or phonenumbers.region_code_for_country_code(code)
    if region == phonenumbers.UNKNOWN_REGION:
        return f"unknown country calling code +{code}"
    possible = phonenumbers.is_possible_number_with_reason(number)
    # The region's own lengths count short codes and toll-free numbers too; the
    # numbers people have (mobile, landline) say better what "too long" means.
    digits = len(phonenumbers.national_significant_number(number))
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
    descs = (metadata.mobile, metadata.fixed_line) if metadata is not None else ()
    lengths = [n for desc in descs if desc is not None for n in desc.possible_length if n > 0]
    if possible == phonenumbers.ValidationResult.TOO_SHORT or (lengths and digits < min(lengths)):
        return f"too short for a phone number in {region}"
    if possible == phonenumbers.ValidationResult.TOO_LONG or (lengths and digits > max(lengths)):
        return f"too long for a phone number in {region}"
    if possible == phonenumbers.ValidationResult.INVALID_LENGTH:
        return f"wrong number of digits for a phone number in {region}"
    return f"not a valid phone number in {region}"


_PARSE_ERRORS = {
    phonenumbers.NumberParseException.INVALID_COUNTRY_CODE: "unknown country calling code",
    phonenumbers.NumberParseException.NOT_A_NUMBER: "not a phone number",
    phonenumbers.NumberParseException.TOO_SHORT_AFTER_IDD: "too short for a phone number",
    phonenumbers.NumberParseException.TOO_SHORT_NSN: "too short for a phone number",
    phonenumbers.NumberParseException.TOO_LONG: "too long for a phone number",
}


def mask(number: str) -> str:
    """``+821012345678`` -> ``+82******5678``: enough to tell numbers apart, not to dial."""
    digits = _SEPARATORS.sub("", number)
    if len(digits) <= 6:
        return "*" * len(digits)
    head = 3 if digits.startswith("+") else 2
    return digits[:head] + "*" * (len(digits) - head - 4) + digits[-4:]


def mask_in_text(text: str) -> str:
    return PHONE_IN_TEXT.sub(lambda m: mask(m.group(0)), text)


def lookup_hash(e164: str, key: bytes) -> str:
    """Keyed hash of a normalised number, for dedupe and lookups without the number."""
    return hmac.new(key, e164.encode(), hashlib.sha256).hexdigest()


def national(e164: str, country_code: str = "82") -> tuple[str, str]:
    """Split ``+821012345678`` into the provider form ``("82", "01012345678")``.

    For numbers of ``country_code`` the trunk ``0`` is restored; others are
    returned as (country code guess, remaining digits) with the full number.
    """
    digits = e164.lstrip("+")
    if digits.startswith(country_code):
        return country_code, "0" + digits[len(country_code) :]
    return "", digits


def seal(keyring: Keyring, subject_id: str, e164: str) -> dict[str, Any]:
    """The subject's number encrypted under the current key, for ``subjects.phone_enc``."""
    return keyring.encrypt(e164, field=SUBJECT_PHONE, owner=subject_id)


def unseal(keyring: Keyring, subject_id: str, sealed: Any) -> str:
    """The number in ``sealed``; :class:`alimi.crypto.Unreadable` if it cannot be opened."""
    return keyring.decrypt(sealed, field=SUBJECT_PHONE, owner=subject_id)
