"""What the law requires a breach notice to say, and by when.

* **KR-PIPA** (Personal Information Protection Act, art. 34): the items of
  personal data leaked; when and how it happened; what the person can do to
  limit the harm; the organisation's countermeasures and remedy; the desk to
  contact. The regulator must be told too when 1,000 or more people are
  affected.
* **EU-GDPR** (art. 34(2), referring to art. 33(3)): the nature of the breach;
  the contact point; the likely consequences; the measures taken or proposed.

A notice carries them as its ``disclosure`` (the contact desk is the
incident's ``contact``); :func:`missing` names what a first notice lacks, and
:func:`render` writes them into the message so every person reads them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

LEGAL_DEADLINE = timedelta(hours=72)
REGULATOR_REPORT_THRESHOLD = {"KR-PIPA": 1000}


@dataclass(frozen=True)
class Item:
    field: str  # in the notice's disclosure, or "contact" for the incident's
    legal_name: str


REQUIRED: Mapping[str, tuple[Item, ...]] = {
    "KR-PIPA": (
        Item("leaked_items", "the items of personal data leaked"),
        Item("when_and_how", "when and how the leak happened"),
        Item("what_you_can_do", "what the person can do to limit the harm"),
        Item("countermeasures", "the organisation's countermeasures and remedy"),
        Item("contact", "the desk to contact"),
    ),
    "EU-GDPR": (
        Item("when_and_how", "the nature of the breach"),
        Item("contact", "the contact point"),
        Item("likely_consequences", "the likely consequences"),
        Item("countermeasures", "the measures taken or proposed"),
    ),
}

LABELS: Mapping[str, Mapping[str, str]] = {
    "ko": {
        "leaked_items": "유출된 항목",
        "when_and_how": "유출 시점과 경위",
        "likely_consequences": "예상되는 피해",
        "what_you_can_do": "피해를 줄이기 위해 하실 수 있는 일",
        "countermeasures": "회사의 대응 조치와 피해 구제 절차",
    },
    "en": {
        "leaked_items": "What leaked",
        "when_and_how": "When and how",
        "likely_consequences": "Likely consequences",
        "what_you_can_do": "What you can do",
        "countermeasures": "What we are doing, and how we will make it right",
    },
}
ORDER = (
    "leaked_items",
    "when_and_how",
    "likely_consequences",
    "what_you_can_do",
    "countermeasures",
)


def missing(
    jurisdictions: Sequence[str], disclosure: Mapping[str, Any] | None, contact: str
) -> list[tuple[str, Item]]:
    """(jurisdiction, item) for every required item the notice does not carry."""
    given = dict(disclosure or {})
    given["contact"] = contact
    gaps = []
    for jurisdiction in jurisdictions:
        for item in REQUIRED.get(jurisdiction, ()):
            value = given.get(item.field)
            if not value or (isinstance(value, str) and not value.strip()):
                gaps.append((jurisdiction, item))
    return gaps


def render(disclosure: Mapping[str, Any] | None, locale: str) -> str:
    """The disclosure as labelled paragraphs in ``locale`` (Korean labels by default)."""
    if not disclosure:
        return ""
    labels = LABELS.get(locale.split("-")[0], LABELS["ko"])
    parts = []
    for field in ORDER:
        value = disclosure.get(field)
        if not value:
            continue
        text = ", ".join(value) if isinstance(value, list) else str(value)
        parts.append(f"■ {labels[field]}: {text}")
    return "\n".join(parts)


def deadline(discovered_at: datetime) -> datetime:
    return discovered_at + LEGAL_DEADLINE


def regulator_report_due(jurisdictions: Sequence[str], affected: int) -> list[str]:
    """The jurisdictions whose regulator must be told, given ``affected`` people."""
    return [
        j
        for j in jurisdictions
        if j in REGULATOR_REPORT_THRESHOLD and affected >= REGULATOR_REPORT_THRESHOLD[j]
    ]
