"""Pure logic: people sorted by phone hash in, deduplicated delivery batches out.

The audience arrives sorted by phone hash and is read in runs of one number
(:func:`alimi.dedupe.by_number`, which intake's preview counts with too). Each
run is routed to its first person's first channel (:mod:`alimi.channel_choice`);
a step holds one batch per channel plus the people nobody can reach, and ends
when any of them is full. A group is placed whole, so
everything up to a step's last phone hash is in that step or an earlier one,
which makes the hash a checkpoint to resume from.

Subjects arrive with their number decrypted in ``phone``; one whose number
could not be decrypted has ``phone`` None and is skipped (``phone_unreadable``)
on its own: others sharing its hash are still reached.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from alimi import dedupe
from alimi.channel_choice import DEFAULT_PREFERENCE, Unreachable, route
from alimi.messages import Channel, Recipient

MAX_SKIPPED_PER_STEP = 1000
PHONE_UNREADABLE = "phone_unreadable"  # a skip reason (bounded: it labels metrics)


@dataclass(frozen=True)
class Skipped:
    subject_id: str
    also_subject_ids: tuple[str, ...]
    reason: str
    detail: str


@dataclass
class Batch:
    """One step: a batch per channel and the skipped, up to ``last_phone_hash``."""

    seq: int
    by_channel: dict[Channel, list[Recipient]]
    skipped: list[Skipped]
    last_phone_hash: str

    @property
    def recipients(self) -> list[Recipient]:
        return [r for people in self.by_channel.values() for r in people]

    @property
    def merged(self) -> int:
        """People who share another's number: on a recipient's receipt, or on a skipped
        person's (nobody can reach that number), so that people = recipients + merged +
        skipped counts everyone once."""
        on_recipients = sum(len(r.also_subject_ids) for r in self.recipients)
        return on_recipients + sum(len(s.also_subject_ids) for s in self.skipped)


@dataclass
class _Pending:
    """Everyone with one phone hash: the first readable subject and the rest."""

    phone_hash: str
    doc: dict[str, Any] | None = None
    also: list[str] = field(default_factory=list)
    unreadable: list[dict[str, Any]] = field(default_factory=list)

    def take(self, doc: dict[str, Any]) -> None:
        if doc.get("phone") is None:
            self.unreadable.append(doc)
        elif self.doc is None:
            self.doc = doc
        else:
            self.also.append(doc["_id"])

    def recipient(self, fallback: tuple[Channel, ...]) -> Recipient:
        d = self.doc
        assert d is not None
        return Recipient(
            subject_id=d["_id"],
            phone=d["phone"],
            # One message for everyone sharing the number: it names none of them (the
            # template's neutral word), rather than always the first by external id.
            name="" if self.also else d.get("name") or "",
            locale=d.get("locale") or "ko",
            also_subject_ids=tuple(self.also),
            fallback=fallback,
        )


async def batches(
    subjects: AsyncIterable[dict[str, Any]],
    *,
    size: int,
    first_seq: int = 1,
    channels: Sequence[str] = DEFAULT_PREFERENCE,
) -> AsyncIterator[Batch]:
    """Group ``subjects`` (sorted by ``phone_hash``, all with a phone hash) into steps."""
    step = Batch(first_seq, {}, [], "")

    def add(pending: _Pending) -> bool:
        """Place one group; True when the step is full."""
        step.last_phone_hash = pending.phone_hash
        for doc in pending.unreadable:
            step.skipped.append(
                Skipped(doc["_id"], (), PHONE_UNREADABLE, "the phone number cannot be decrypted")
            )
        full = len(step.skipped) >= MAX_SKIPPED_PER_STEP
        if pending.doc is None:
            return full
        chosen = route(pending.doc, channels)
        if isinstance(chosen, Unreachable):
            step.skipped.append(
                Skipped(pending.doc["_id"], tuple(pending.also), chosen.reason, chosen.detail)
            )
            return len(step.skipped) >= MAX_SKIPPED_PER_STEP
        people = step.by_channel.setdefault(chosen.channel, [])
        people.append(pending.recipient(chosen.fallback))
        return full or len(people) >= size

    async for run in dedupe.by_number(subjects):
        pending = _Pending(run[0]["phone_hash"])
        for doc in run:
            pending.take(doc)
        if add(pending):
            yield step
            step = Batch(step.seq + 1, {}, [], "")
    if step.by_channel or step.skipped:
        yield step
