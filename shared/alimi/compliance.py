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

Both laws give 72 hours from discovery (:data:`LEGAL_DEADLINE`), to tell the
people and, past a number of them, the regulator. :func:`legal_deadline` says
where an incident stands at a given moment, overdue or not, in fields and in
a sentence; :func:`regulator_report_note` says what is due to the regulator.
A discovery cannot lie ahead: :data:`CLOCK_SKEW` is all the future allowed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

LEGAL_DEADLINE = timedelta(hours=72)
# How far ahead of this server's clock a discovered_at may be: the clocks of the
# operator's machine and the server's may differ a little, a discovery cannot be later.
CLOCK_SKEW = timedelta(minutes=5)
REGULATOR_REPORT_THRESHOLD = {"KR-PIPA": 1000}
REGULATORS = {"KR-PIPA": "the Personal Information Protection Commission (PIPC)"}


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


def duration(seconds: float) -> str:
    """``3d 4h``, ``2h 05m``, ``4m 09s``, ``12s``: two units at most."""
    whole = round(abs(seconds))
    days, rest = divmod(whole, 86_400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


@dataclass(frozen=True)
class Deadline:
    """An incident's 72-hour deadline, seen at one moment."""

    at: datetime
    seconds_left: int  # negative once it has passed

    @property
    def overdue(self) -> bool:
        return self.seconds_left < 0

    @property
    def overdue_by_s(self) -> int:
        return max(-self.seconds_left, 0)

    def note(self) -> str:
        """Where the deadline stands, in a sentence for people."""
        when = f"{self.at.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
        if self.overdue:
            return (
                f"Overdue by {duration(self.overdue_by_s)}: the 72-hour legal deadline passed"
                f" at {when}. Tell the affected people without further delay."
            )
        return f"{duration(self.seconds_left)} left to the 72-hour legal deadline ({when})."

    def fields(self) -> dict[str, Any]:
        """``deadline``, ``seconds_left``, ``overdue``, ``overdue_by_s``, ``deadline_note``."""
        return {
            "deadline": self.at.isoformat(),
            "seconds_left": self.seconds_left,
            "overdue": self.overdue,
            "overdue_by_s": self.overdue_by_s,
            "deadline_note": self.note(),
        }


def legal_deadline(discovered_at: datetime, now: datetime) -> Deadline:
    return _at(deadline(discovered_at), now)


def incident_deadline(incident: Mapping[str, Any], now: datetime) -> Deadline:
    """A stored incident's deadline (its own ``deadline``, else 72 h after discovery)."""
    stored = incident.get("deadline")
    if isinstance(stored, datetime):
        return _at(stored, now)
    return legal_deadline(incident["discovered_at"], now)


def _at(at: datetime, now: datetime) -> Deadline:
    return Deadline(at=at, seconds_left=int((at - now).total_seconds()))


def regulator_report_due(jurisdictions: Sequence[str], affected: int) -> list[str]:
    """The jurisdictions whose regulator must be told, given ``affected`` people."""
    return [
        j
        for j in jurisdictions
        if j in REGULATOR_REPORT_THRESHOLD and affected >= REGULATOR_REPORT_THRESHOLD[j]
    ]


def regulator_report_note(due: Sequence[str], when: Deadline) -> str | None:
    """What is due to the regulators of ``due`` (see :func:`regulator_report_due`) by
    ``when``, in a sentence: by when, or, the deadline passed, that it is overdue and by
    how much. None when no report is due."""
    if not due:
        return None
    whom = "; ".join(f"{REGULATORS.get(j, 'the regulator')} ({j})" for j in due)
    if when.overdue:
        return f"The report to {whom} is overdue by {duration(when.overdue_by_s)}: make it now."
    return f"Report to {whom} by {when.at.astimezone(UTC):%Y-%m-%d %H:%M} UTC."
