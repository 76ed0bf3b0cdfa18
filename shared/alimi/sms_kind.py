"""SMS or LMS: how a Korean text travels, decided by its size in EUC-KR bytes.

Korean carriers measure a message in EUC-KR bytes (a Hangul syllable is two, an
ASCII character one): up to 90 bytes it goes as an SMS, longer as an LMS of up
to 2,000 bytes with a subject line of up to 40. Intake refuses what no LMS can
carry, its preview says which a notice will be, and delivery picks the kind for
each person's text: all three ask this module, so they cannot disagree.
International routes count GSM-7 / UCS-2 segments instead
(:mod:`alimi.sms_encoding`).
"""

from __future__ import annotations

from typing import Literal

SMS_MAX_BYTES = 90
LMS_MAX_BYTES = 2000
LMS_TITLE_MAX_BYTES = 40

Kind = Literal["SMS", "LMS"]


def euc_kr_bytes(text: str) -> int:
    """Bytes of ``text`` in EUC-KR; a character EUC-KR cannot carry counts as one
    (the ``?`` it would become), so measuring never raises."""
    return len(text.encode("euc_kr", errors="replace"))


def sms_kind(text: str) -> Kind:
    """``SMS`` up to 90 EUC-KR bytes, ``LMS`` beyond (intake keeps texts within 2,000)."""
    return "SMS" if euc_kr_bytes(text) <= SMS_MAX_BYTES else "LMS"


def fits_lms(text: str) -> bool:
    return euc_kr_bytes(text) <= LMS_MAX_BYTES


def cut(text: str, limit: int) -> str:
    """``text`` shortened to at most ``limit`` EUC-KR bytes, never splitting a character."""
    while euc_kr_bytes(text) > limit:
        text = text[:-1]
    return text


def unencodable(text: str) -> list[str]:
    """The characters of ``text`` that EUC-KR cannot carry (emoji, for instance), once each."""
    bad = []
    for ch in dict.fromkeys(text):
        try:
            ch.encode("euc_kr")
        except UnicodeEncodeError:
            bad.append(ch)
    return bad
