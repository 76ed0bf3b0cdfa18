"""Segmentation of one partition of a notice's audience, by whichever replica owns it.

A ``notice.partition`` message names a partition (:mod:`alimi.partitions`);
the replica that takes its lease streams its phone-hash range from its
checkpoint (:mod:`audience_stream`), dedupes people who share a number, picks
each person's channel (:mod:`batching`), publishes the delivery batches, and
saves its checkpoint and counts with the lease once a second
(:mod:`checkpoint`). A message for a partition another live replica owns, or
one already done, is acknowledged and logged: the work is never run twice. A
partition whose owner died is taken over once its lease is over (the progress
tracker publishes its message again) and continues from its checkpoint.

Staff hear ``started`` as soon as any partition has published its first batch.
When the last partition of the notice's run is done, the notice is ``sending``.
"""

from __future__ import annotations

import logging
import secrets
import time
from datetime import UTC, datetime
from typing import Any

from prometheus_client import Counter

from alimi import leases, notice_states, partitions, states, topology
from alimi.audience import AudienceSpec, to_query
from alimi.bus import Bus, Unprocessable
from alimi.channel_choice import DEFAULT_PREFERENCE
from alimi.counters import Shards
from alimi.crypto import Keyring
from alimi.ids import batch_id
from alimi.messages import DeliveryBatch, NoticeApproved, NoticePartition
from alimi.store import Store
from alimi_segmenter import audience_stream, planner, staff, unreached
from alimi_segmenter.batching import Batch, batches
from alimi_segmenter.checkpoint import Checkpoint, LeaseLost
from alimi_segmenter.unreached import RESOLVED

log = logging.getLogger("alimi.segmenter")

BATCHES = Counter("alimi_segmenter_batches_published_total", "Delivery batches published")
PARTITIONS = Counter(
    "alimi_segmenter_partitions_total",
    "Partition messages taken, by what became of them",
    ["outcome"],  # done, owned (another replica has it), already_done, lease_lost, stale
)
HALT_CHECK_S = 1.0  # a halt stops publishing within about this long
# A notice may still be segmented in these (halted: the rest are written halted).
SEGMENTED_IN = frozenset({states.NOTICE_SEGMENTING, states.NOTICE_HALTED})


def declare_metrics() -> None:
    for outcome in ("done", "owned", "already_done", "lease_lost", "stale"):
        PARTITIONS.labels(outcome)


async def segment_partition(
    store: Store,
    bus: Bus,
    message: NoticePartition,
    *,
    owner: str,
    lease_s: float,
    batch_size: int,
    keyring: Keyring,
    shards: Shards,
) -> str:
    """Segment the partition ``message`` names if this replica can take it; the outcome.

    ``owner`` names the process; each run takes the lease under an owner of its own
    (``{owner}/{random}``), so a second copy of the message handled by the same process
    at the same time (prefetch > 1, a partition published again while queued) finds
    the lease held and stops, instead of renewing it and running beside the first."""
    owner = f"{owner}/{secrets.token_hex(4)}"
    part = await store.partitions.find_one({"_id": message.partition_id})
    if part is None:
        raise Unprocessable(f"partition {message.partition_id} does not exist")
    where = {"_id": message.partition_id}
    if part["state"] == partitions.DONE:
        return _outcome("already_done", where)
    if not await leases.take(
        store.partitions, part["_id"], owner, lease_s, where={"state": {"$ne": partitions.DONE}}
    ):
        current = await store.partitions.find_one({"_id": part["_id"]}, {"state": 1, "lease": 1})
        if (current or {}).get("state") == partitions.DONE:
            return _outcome("already_done", where)
        holder = ((current or {}).get("lease") or {}).get("owner")
        return _outcome("owned", {**where, "owner": holder})
    notice = await store.notices.find_one({"_id": part["notice_id"]})
    if notice is None or notice.get("run") != part["run"] or notice["state"] not in SEGMENTED_IN:
        # An earlier run of a resumed notice, or a notice past segmenting: nothing to do.
        await leases.release(
            store.partitions, part["_id"], owner, changes={"state": partitions.DONE}
        )
        return _outcome("stale", {**where, "state": (notice or {}).get("state")})
    await store.partitions.update_one(
        {"_id": part["_id"], "lease.owner": owner},
        {"$set": {"state": partitions.RUNNING, "started_at": datetime.now(UTC)}},
    )
    saved = Checkpoint(store, part["_id"], owner=owner, lease_s=lease_s)
    try:
        async with shards.take() as shard:
            await _segment(store, bus, notice, part, saved, batch_size, keyring, shard)
        await saved.save(state=partitions.DONE, done_at=datetime.now(UTC))
    except LeaseLost:
        return _outcome("lease_lost", where)
    await leases.release(store.partitions, part["_id"], owner)
    await _maybe_segmented(store, notice)
    return _outcome("done", where)


def _outcome(outcome: str, extra: dict[str, Any]) -> str:
    PARTITIONS.labels(outcome).inc()
    words = {
        "done": "partition segmented",
        "owned": "partition owned by another segmenter; this message is not run twice",
        "already_done": "partition already segmented; nothing to do",
        "lease_lost": "partition taken over by another segmenter; stopped here",
        "stale": "partition of a notice no longer segmenting this run; nothing to do",
    }
    log.info(words[outcome], extra={"partition_id": extra.pop("_id"), **extra})
    return outcome


async def _segment(
    store: Store,
    bus: Bus,
    notice: dict[str, Any],
    part: dict[str, Any],
    saved: Checkpoint,
    batch_size: int,
    keyring: Keyring,
    shard: str,
) -> None:
    notice_id = notice["_id"]
    spec = AudienceSpec.model_validate(notice["audience"])
    query = to_query(spec)
    checkpoint = part.get("checkpoint") or {}
    if checkpoint:
        log.info(
            "resuming partition from its checkpoint",
            extra={"partition_id": part["_id"], **checkpoint},
        )
    if part.get("no_phone") and not checkpoint.get("no_phone_done"):
        skipped = await unreached.skip_people_without_phone(store, notice, query, shard=shard)
        saved.count("skipped_no_phone", skipped)
        saved.move(no_phone_done=True)
        await saved.save()

    started = bool(notice.get("started_at"))
    halted = notice["state"] == states.NOTICE_HALTED
    halt_checked = time.monotonic()
    async for step in batches(
        audience_stream.stream(
            store,
            spec,
            after=checkpoint.get("last_phone_hash"),
            lo=part["lo"],
            hi=part["hi"],
            keyring=keyring,
            notice_id=notice_id,
        ),
        size=batch_size,
        first_seq=checkpoint.get("next_seq") or _first_seq(part),
        channels=notice.get("channels") or DEFAULT_PREFERENCE,
    ):
        if not halted and time.monotonic() - halt_checked >= HALT_CHECK_S:
            halt_checked = time.monotonic()
            halted = await _is_halted(store, notice_id)
        if halted:
            # Everyone not yet published is told nothing and gets a halted receipt.
            await unreached.write(store, notice, unreached.not_reached(step), shard=shard)
            saved.move(last_phone_hash=step.last_phone_hash, next_seq=step.seq + 1)
            continue
        await unreached.write(
            store, notice, [unreached.skipped(s) for s in step.skipped], shard=shard
        )
        await _publish(bus, notice, step)
        if not started and step.by_channel:
            started = await _announce_started(store, bus, notice)
        # The checkpoint moves (and counts) only after everything up to it is published.
        await saved.step(step)
        BATCHES.inc(len(step.by_channel))
        RESOLVED.labels("published").inc(len(step.recipients))
        RESOLVED.labels("deduplicated").inc(step.merged)
        for s in step.skipped:
            RESOLVED.labels(f"skipped_{s.reason}").inc()


def _first_seq(part: dict[str, Any]) -> int:
    """Batch numbers of different partitions never meet: each has a block of its own."""
    return int(part["index"]) * 10_000_000 + 1


async def _publish(bus: Bus, notice: dict[str, Any], step: Batch) -> None:
    for channel, people in step.by_channel.items():
        message = DeliveryBatch(
            batch_id=batch_id(notice["_id"], channel, step.seq),
            notice_id=notice["_id"],
            incident_id=notice["incident_id"],
            channel=channel,
            recipients=tuple(people),
        )
        await bus.publish(
            topology.DELIVERY, channel, message.to_bytes(), message_id=message.batch_id
        )


async def _announce_started(store: Store, bus: Bus, notice: dict[str, Any]) -> bool:
    """Tell staff the notice started (its first batch is out), once per run as far as this
    replica knows; the Slack worker posts the parent once however often it is told."""
    found = await store.notices.find_one({"_id": notice["_id"]}, {"started_at": 1})
    if not (found or {}).get("started_at"):
        await staff.announce(
            bus, notice_id=notice["_id"], incident_id=notice["incident_id"], stage="started"
        )
        await store.notices.update_one(
            {"_id": notice["_id"], "started_at": {"$exists": False}},
            {"$set": {"started_at": datetime.now(UTC)}},
        )
    return True


async def _is_halted(store: Store, notice_id: str) -> bool:
    found = await store.notices.find_one({"_id": notice_id}, {"state": 1})
    return found is None or found.get("state") == states.NOTICE_HALTED


async def _maybe_segmented(store: Store, notice: dict[str, Any]) -> None:
    """Once every partition of the notice's run is done, the notice is ``sending``."""
    left = await store.partitions.count_documents(
        {"notice_id": notice["_id"], "run": notice["run"], "state": {"$ne": partitions.DONE}}
    )
    if left:
        return
    done = await notice_states.move(
        store, notice["_id"], "segmented", changes={"segmented_at": datetime.now(UTC)}
    )
    if done is not None:
        log.info(
            "notice segmented",
            extra={
                "notice_id": notice["_id"],
                "incident_id": notice["incident_id"],
                "partitions": notice.get("partitions"),
            },
        )


async def segment_notice(
    store: Store,
    bus: Bus,
    *,
    notice_id: str,
    batch_size: int,
    keyring: Keyring,
    shards: Shards | None = None,
    people_per_partition: int = 50_000,
    most_partitions: int = 256,
    lease_s: float = 30.0,
) -> None:
    """Plan an approved notice and segment every partition of it here, one after another.

    For tests and tools that want a notice segmented without a running segmenter;
    the partition messages the plan publishes are found done by whoever takes them.
    """
    notice = await store.notices.find_one({"_id": notice_id})
    if notice is None:
        raise Unprocessable(f"notice {notice_id} does not exist")
    event = NoticeApproved(
        notice_id=notice_id,
        incident_id=notice["incident_id"],
        approved_at=notice.get("approved_at") or datetime.now(UTC),
    )
    await planner.plan(
        store,
        bus,
        event,
        people_per_partition=people_per_partition,
        most_partitions=most_partitions,
    )
    notice = await store.notices.find_one({"_id": notice_id})
    assert notice is not None
    owner = leases.owner_id("segmenter-inline")
    shards = shards or Shards.for_process("segmenter", slots=1)
    async for part in store.partitions.find(
        {"notice_id": notice_id, "run": notice.get("run"), "state": {"$ne": partitions.DONE}}
    ).sort("index", 1):
        message = NoticePartition(
            partition_id=part["_id"],
            notice_id=notice_id,
            incident_id=notice["incident_id"],
            run=part["run"],
            index=part["index"],
        )
        await segment_partition(
            store,
            bus,
            message,
            owner=owner,
            lease_s=lease_s,
            batch_size=batch_size,
            keyring=keyring,
            shards=shards,
        )
