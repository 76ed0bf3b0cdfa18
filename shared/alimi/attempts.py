"""Attempts: what happened to each person of one handling of a group of people.

A receipt (one per notice and person, ``receipts``) is written once, when a
delivery worker claims the person or the segmenter skips them; it names its
*current attempt*. The attempt document (``attempts``) is written once per
group handled — one batch sent to a provider, a batch halted, answers found at
the provider, people the segmenter skipped — with one entry per person: the
status, the provider's message id or error, and whatever else is known.

A person's status is their current attempt's entry for them (``claimed``
while that attempt has no document yet); a delivery report, kept apart in
``delivery_reports``, then turns ``sent`` into ``delivered`` or
``undelivered`` (:mod:`alimi.receipt_view`). So a first attempt costs one
write per person (the claim) and one per batch (the attempt), never an update
of a person's document: on the development database an update costs five
inserts, and every document a hot path updates is one it must also read.

A person handled again (a retry, a fallback to the next channel, a resumed
notice, a claim whose worker died) is claimed again: the receipt's
``attempt`` moves to the new one and the old id joins its ``history``, so the
whole story stays readable from the attempts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from alimi import ids, states

# What an attempt document records.
SEND = "send"  # a provider's answers (or the breaker refusing the call)
HALT = "halt"  # the notice was halted after these people were claimed
SETTLE = "settle"  # attempts in doubt, answered by the provider: found, so sent
SEGMENT = "segment"  # the segmenter's decisions: skipped people, people not reached (halted)
REPLAY = "replay"  # dead letters put back: retrying again
DISCARD = "discard"  # dead letters dropped with the people's contact data
KINDS = (SEND, HALT, SETTLE, SEGMENT, REPLAY, DISCARD)

NO_CHANNEL = "none"  # the channel of people decided before any channel was chosen


@dataclass(frozen=True)
class Outcome:
    """One person's outcome in an attempt: the typed form of an attempt entry."""

    subject_id: str
    status: str
    message_id: str | None = None  # the provider's id of the message (sent)
    message_type: str | None = None  # SMS, LMS, ALIMTALK
    error_code: str | None = None
    error: str | None = None
    detail: str | None = None  # a sentence for people reading the receipt
    reason: str | None = None  # a bounded word: why skipped, why fell back
    in_doubt: bool = False  # the provider may have the message although no answer came
    dead_lettered: bool = False  # given up after the last retry; its batch is a dead letter
    # Not stored: how long the provider asked to wait before the next try.
    retry_after_s: float | None = field(default=None, compare=False)
    extra: Mapping[str, Any] = field(default_factory=dict)  # channel-specific facts

    def entry(self) -> dict[str, Any]:
        """The stored form: only what is known."""
        stored: dict[str, Any] = {"subject_id": self.subject_id, "status": self.status}
        for name in ("message_id", "message_type", "error_code", "error", "detail", "reason"):
            value = getattr(self, name)
            if value:
                stored[name] = value
        if self.in_doubt:
            stored["in_doubt"] = True
        if self.dead_lettered:
            stored["dead_lettered"] = True
        stored.update(self.extra)
        return stored


def document(
    attempt_id: str,
    *,
    kind: str,
    notice_id: str,
    incident_id: str,
    channel: str | None,
    at: datetime,
    outcomes: Sequence[Outcome],
    provider: str | None = None,
    batch_id: str | None = None,
    attempt: int | None = None,
    note: str | None = None,
) -> dict[str, Any]:
    """The attempt document for ``outcomes``, as it is inserted (once)."""
    assert kind in KINDS, kind
    doc: dict[str, Any] = {
        "_id": attempt_id,
        "kind": kind,
        "notice_id": notice_id,
        "incident_id": incident_id,
        "channel": channel or NO_CHANNEL,
        "at": at,
        "people": [o.entry() for o in outcomes],
        "counts": status_counts(outcomes),
        # Delivery reports name the provider's request; this finds the attempt that made it.
        "requests": sorted({ids.provider_request(o.message_id) for o in outcomes if o.message_id}),
    }
    for name, value in (
        ("provider", provider),
        ("batch_id", batch_id),
        ("attempt", attempt),
        ("note", note),
    ):
        if value is not None:
            doc[name] = value
    if any(o.dead_lettered for o in outcomes):
        doc["dead_lettered"] = True  # the dead-letter summary reads only these
    return doc


def status_counts(outcomes: Iterable[Outcome]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for o in outcomes:
        counts[o.status] = counts.get(o.status, 0) + 1
    return counts


def entries(doc: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Subject id -> entry, for looking up many people of one attempt."""
    return {e["subject_id"]: e for e in doc.get("people", ())}


def entry_for(doc: Mapping[str, Any] | None, subject_id: str) -> dict[str, Any] | None:
    if doc is None:
        return None
    for e in doc.get("people", ()):
        if e["subject_id"] == subject_id:
            return e
    return None


def status_of(entry: Mapping[str, Any] | None) -> str:
    """A person's status in an attempt: ``claimed`` until the attempt is written."""
    return states.CLAIMED if entry is None else str(entry["status"])
