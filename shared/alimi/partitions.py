"""A notice's audience split into partitions, and the notice's totals summed over them.

When a notice is approved the segmenter splits its audience into partitions:
ranges of the phone-hash space (``lo <= phone_hash < hi``), so everyone sharing
a number falls in the same one and deduplication stays exact inside each. Each
partition is a document of ``partitions`` and a message of its own; any
segmenter replica takes one under a lease, streams its range from its own
checkpoint and keeps its own counts, written with the checkpoint. A notice's
totals are the sum over the partitions of its current *run* (a resumed notice
starts a new run), so a partition replayed after a crash never counts twice.

Phone hashes are 64 lowercase hex characters of an HMAC, spread evenly, so equal
slices of the hex space give partitions of about equal size; a boundary is an
8-character hex prefix, which compares with full hashes as numbers do.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from alimi import leases
from alimi.store import Store

SPACE = 16**8  # the hex prefixes boundaries are cut at
PENDING = "pending"
RUNNING = "running"
DONE = "done"
COUNTED = (
    "recipients_published",
    "batches_published",
    "deduplicated",
    "skipped_no_phone",
    "skipped_unreachable",
)


def how_many(audience: int, people_per_partition: int, most: int) -> int:
    """Partitions for an audience of ``audience`` people: one per ``people_per_partition``,
    at least one, at most ``most``."""
    return max(1, min(most, math.ceil(audience / max(1, people_per_partition))))


def ranges(count: int) -> list[tuple[str, str | None]]:
    """``count`` phone-hash ranges ``(lo, hi)`` covering every hash; ``hi`` None: no end."""
    cuts = [f"{i * SPACE // count:08x}" for i in range(1, count)]
    return list(zip(["", *cuts], [*cuts, None], strict=True))


def partition_id(notice_id: str, run: int, index: int) -> str:
    return f"{notice_id}:r{run}:p{index:04d}"


def document(
    notice: Mapping[str, Any], *, run: int, index: int, count: int, lo: str, hi: str | None
) -> dict[str, Any]:
    return {
        "_id": partition_id(notice["_id"], run, index),
        "notice_id": notice["_id"],
        "incident_id": notice["incident_id"],
        "run": run,
        "index": index,
        "count": count,
        "lo": lo,
        "hi": hi,
        # The first partition also skips the audience's people with no number.
        "no_phone": index == 0,
        "state": PENDING,
        "lease": leases.free(),
        "checkpoint": {},
        "progress": {},
        "created_at": datetime.now(UTC),
    }


@dataclass
class Progress:
    """A notice's segmentation: what the segmenter resolved, summed over its partitions.

    The definitions every view uses (glossary in docs/architecture.md):
    **recipients** get one message each (one per phone number); **merged** are
    people reached by another person's message (they share the number);
    **skipped** are people nobody can reach; **people** are all of them, everyone
    in the audience: ``people = recipients + merged + skipped``.
    """

    recipients_published: int = 0
    batches_published: int = 0
    deduplicated: int = 0
    skipped_no_phone: int = 0
    skipped_unreachable: int = 0
    by_channel: dict[str, int] = field(default_factory=dict)
    partitions: int = 0
    partitions_done: int = 0

    @property
    def skipped(self) -> int:
        return self.skipped_no_phone + self.skipped_unreachable

    @property
    def expected_receipts(self) -> int:
        """One receipt per recipient and per skipped person (merged people share one)."""
        return self.recipients_published + self.skipped

    @property
    def people(self) -> int:
        return self.recipients_published + self.deduplicated + self.skipped

    def add(self, counts: Mapping[str, Any]) -> None:
        for name in COUNTED:
            setattr(self, name, getattr(self, name) + int(counts.get(name) or 0))
        for channel, n in (counts.get("by_channel") or {}).items():
            self.by_channel[channel] = self.by_channel.get(channel, 0) + int(n)

    def as_dict(self) -> dict[str, Any]:
        return {
            "people": self.people,
            "recipients": self.recipients_published,
            "merged": self.deduplicated,
            "skipped": self.skipped,
            "skipped_no_phone": self.skipped_no_phone,
            "skipped_unreachable": self.skipped_unreachable,
            "recipients_by_channel": dict(self.by_channel),
            "batches": self.batches_published,
            "partitions": self.partitions,
            "partitions_done": self.partitions_done,
        }


def summed(notice: Mapping[str, Any], parts: Iterable[Mapping[str, Any]]) -> Progress:
    """The notice's progress from its partitions of its current run; a notice segmented
    before partitions existed keeps its totals on itself (``progress``)."""
    run = notice.get("run")
    mine = [p for p in parts if p.get("run") == run]
    progress = Progress()
    if run is None or not mine:
        progress.add(notice.get("progress") or {})
        return progress
    for part in mine:
        progress.add(part.get("progress") or {})
    progress.partitions = len(mine)
    progress.partitions_done = sum(1 for p in mine if p.get("state") == DONE)
    return progress


async def progress_of(store: Store, notices: Sequence[Mapping[str, Any]]) -> dict[str, Progress]:
    """notice id -> its :class:`Progress`, reading the partitions of all of them at once."""
    wanted = [n["_id"] for n in notices]
    parts: dict[str, list[dict[str, Any]]] = {nid: [] for nid in wanted}
    if wanted:
        async for part in store.partitions.find(
            {"notice_id": {"$in": wanted}},
            {"notice_id": 1, "run": 1, "state": 1, "progress": 1},
        ):
            parts[part["notice_id"]].append(part)
    return {n["_id"]: summed(n, parts[n["_id"]]) for n in notices}
