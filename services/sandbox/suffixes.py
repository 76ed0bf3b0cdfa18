"""Ranges of phone-number endings ("last 4 digits") that pick a simulated outcome."""

from __future__ import annotations

from dataclasses import dataclass

SUFFIX_DIGITS = 4
_LARGEST = 10**SUFFIX_DIGITS - 1


@dataclass(frozen=True, slots=True)
class SuffixRanges:
    """Inclusive ranges over a number's last four digits, such as ``7000-9999,0100``.

    The empty set (``""``) matches nothing. Numbers shorter than four digits or with
    non-digits at the end never match.
    """

    ranges: tuple[tuple[int, int], ...] = ()

    @classmethod
    def parse(cls, raw: str) -> SuffixRanges:
        """Read ``"7000-9999"``, ``"0000-0099,5000"`` or ``""``; raise ValueError if unusable."""
        ranges: list[tuple[int, int]] = []
        for part in raw.split(","):
            part = part.strip()
            if not part:
                continue
            low_text, dash, high_text = part.partition("-")
            low = _suffix(low_text.strip(), part)
            high = _suffix(high_text.strip(), part) if dash else low
            if low > high:
                raise ValueError(f"range {part!r} runs backwards")
            ranges.append((low, high))
        return cls(tuple(ranges))

    def __contains__(self, number: object) -> bool:
        if not self.ranges or not isinstance(number, str):
            return False
        tail = number[-SUFFIX_DIGITS:]
        if len(tail) < SUFFIX_DIGITS or not (tail.isascii() and tail.isdigit()):
            return False
        value = int(tail)
        return any(low <= value <= high for low, high in self.ranges)

    def __bool__(self) -> bool:
        return bool(self.ranges)

    def __str__(self) -> str:
        return ",".join(
            f"{low:04d}" if low == high else f"{low:04d}-{high:04d}" for low, high in self.ranges
        )


def _suffix(text: str, part: str) -> int:
    if not (len(text) == SUFFIX_DIGITS and text.isascii() and text.isdigit()):
        raise ValueError(
            f"must be comma-separated 4-digit endings or ranges such as 7000-9999 (bad: {part!r})"
        )
    value = int(text)
    assert 0 <= value <= _LARGEST
    return value
