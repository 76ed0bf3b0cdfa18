"""Phone numbers: normalisation to E.164, masking, the keyed lookup hash, encryption at rest.

Only masked numbers ever leave the component that needs the real one: logs,
receipts and metrics use :func:`mask`. In ``subjects`` the number is stored
encrypted (:func:`seal`), bound to the subject's id; only the segmenter opens
it (:func:`unseal`), to put it in delivery batches.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import Any

from alimi.crypto import Keyring

# "+" and 8 to 15 digits: the E.164 shape, country code first.
E164 = re.compile(r"^\+[1-9]\d{7,14}$")
_SEPARATORS = re.compile(r"[\s().-]")

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


def normalise(raw: str, default_country_code: str = "82") -> str:
    """Return ``raw`` as E.164 (``+821012345678``) or raise :class:`InvalidPhone`.

    Accepts international numbers with ``+`` and national numbers starting with
    a trunk ``0`` (taken as ``default_country_code``).
    """
    compact = _SEPARATORS.sub("", raw.strip())
    if compact.startswith("00"):
        compact = "+" + compact[2:]
    elif compact.startswith("0"):
        compact = f"+{default_country_code}{compact[1:]}"
    trunk = f"+{default_country_code}0"
    if compact.startswith(trunk):  # "+82 010-…": the national trunk 0 written after the code
        compact = f"+{default_country_code}{compact[len(trunk) :]}"
    if not E164.match(compact):
        raise InvalidPhone("not a phone number: expected E.164 like +821012345678 or 010-1234-5678")
    return compact


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
