"""A partition's checkpoint and counts, saved together with its owner's lease.

A step's counts are added in the same write that moves the checkpoint past it,
so a step published again after a crash (everything after the last saved
checkpoint is) is counted once. The write also renews the owner's lease, and
is conditional on still holding it: an owner that lost its lease (it was
paused longer than the lease, and another segmenter took the partition over)
learns so at its next save and stops, having written nothing.

Saving once a second instead of once a step costs a restart at most a second
of batches published again, which the delivery claims make harmless, and saves
the database a write per step.
"""

from __future__ import annotations

import time
from typing import Any

from alimi import leases
from alimi.store import Store
from alimi_segmenter.batching import Batch

EVERY_S = 1.0


class LeaseLost(Exception):
    """Another segmenter owns the partition now: stop, it carries on from the checkpoint."""


class Checkpoint:
    def __init__(
        self,
        store: Store,
        partition_id: str,
        *,
        owner: str,
        lease_s: float,
        every_s: float = EVERY_S,
    ) -> None:
        self.store = store
        self.partition_id = partition_id
        self.owner = owner
        self.lease_s = lease_s
        self.every_s = every_s
        self.increments: dict[str, int] = {}
        self.position: dict[str, Any] = {}
        self.saved_at = time.monotonic()

    def count(self, name: str, n: int) -> None:
        if n:
            key = f"progress.{name}"
            self.increments[key] = self.increments.get(key, 0) + n

    async def step(self, step: Batch) -> None:
        """Count ``step`` (published) and move past it; saved at most every ``every_s``."""
        self.count("recipients_published", len(step.recipients))
        self.count("batches_published", len(step.by_channel))
        self.count("deduplicated", step.merged)
        self.count("skipped_unreachable", len(step.skipped))
        for channel, people in step.by_channel.items():
            self.count(f"by_channel.{channel}", len(people))
        self.move(last_phone_hash=step.last_phone_hash, next_seq=step.seq + 1)
        if time.monotonic() - self.saved_at >= self.every_s:
            await self.save()

    def move(self, **position: Any) -> None:
        self.position.update({f"checkpoint.{k}": v for k, v in position.items()})

    async def save(self, **changes: Any) -> None:
        """Write what was counted and the position reached, renewing the lease; raises
        :class:`LeaseLost` (nothing written) if this owner no longer holds it."""
        kept = await leases.renew(
            self.store.partitions,
            self.partition_id,
            self.owner,
            self.lease_s,
            changes={**self.position, **changes},
            inc=self.increments or None,
        )
        if not kept:
            raise LeaseLost(self.partition_id)
        self.increments, self.position = {}, {}
        self.saved_at = time.monotonic()
