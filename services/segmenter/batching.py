"""Pure logic: people sorted by phone hash in, deduplicated delivery batches out.

The audience arrives sorted by phone hash, so everyone sharing a number is
adjacent: one pass with a single pending recipient dedupes in constant memory.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from alimi.messages import Recipient


@dataclass
class Batch:
    seq: int
    recipients: list[Recipient]
    last_phone_hash: str  # checkpoint: everything up to this hash is in this or an earlier batch


@dataclass
class _Pending:
    doc: dict[str, Any]
    also: list[str] = field(default_factory=list)

    def recipient(self) -> Recipient:
        d = self.doc
        return Recipient(
            subject_id=d["_id"],
            phone=d["phone"],
            name=d.get("name") or "",
            locale=d.get("locale") or "ko",
            also_subject_ids=tuple(self.also),
        )


async def batches(
    subjects: AsyncIterable[dict[str, Any]], *, size: int, first_seq: int = 1
) -> AsyncIterator[Batch]:
    """Group ``subjects`` (sorted by ``phone_hash``, all with a phone) into batches."""
    seq = first_seq
    current: list[Recipient] = []
    pending: _Pending | None = None
    async for doc in subjects:
        if pending is not None and doc["phone_hash"] == pending.doc["phone_hash"]:
            pending.also.append(doc["_id"])
            continue
        if pending is not None:
            current.append(pending.recipient())
            if len(current) == size:
                yield Batch(seq, current, pending.doc["phone_hash"])
                seq += 1
                current = []
        pending = _Pending(doc)
    if pending is not None:
        current.append(pending.recipient())
        yield Batch(seq, current, pending.doc["phone_hash"])
