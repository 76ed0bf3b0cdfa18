from __future__ import annotations

import pytest

from alimi.sms_encoding import segments


@pytest.mark.parametrize(
    ("text", "encoding", "units", "count"),
    [
        ("a" * 160, "GSM-7", 160, 1),
        ("a" * 161, "GSM-7", 161, 2),
        ("a" * 306, "GSM-7", 306, 2),
        ("a" * 307, "GSM-7", 307, 3),
        ("€" * 80, "GSM-7", 160, 1),
        ("€" * 81, "GSM-7", 162, 2),
        ("é" * 70, "GSM-7", 70, 1),
        ("ç" * 70, "UCS-2", 70, 1),  # lower-case ç is not GSM-7 (only Ç is)
        ("가" * 70, "UCS-2", 70, 1),
        ("가" * 71, "UCS-2", 71, 2),
        ("가" * 134, "UCS-2", 134, 2),
        ("가" * 135, "UCS-2", 135, 3),
        ("😀" * 35, "UCS-2", 70, 1),  # outside the BMP: two code units each
        ("", "GSM-7", 0, 1),
    ],
)
def test_when_text_is_measured__then_encoding_and_segments_follow_gsm_03_38(
    text: str, encoding: str, units: int, count: int
) -> None:
    result = segments(text)
    assert (result.encoding, result.units, result.count) == (encoding, units, count)
