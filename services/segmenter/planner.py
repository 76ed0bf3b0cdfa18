"""An approved notice becomes partitions of its audience, one message each.

On ``notice.approved`` the planner bounds the audience's size without reading it
(:func:`size_bound`), splits the phone-hash space into
``ceil(bound / ALIMI_PARTITION_PEOPLE)`` ranges (at most
``ALIMI_MAX_PARTITIONS``; :mod:`alimi.partitions`), writes one partition
document per range for the notice's next *run* (a resumed notice starts a new
one), moves the notice to ``segmenting`` and publishes a ``notice.partition``
message per partition. Any replica then takes them (:mod:`service`).

Planning twice changes nothing: partition ids are deterministic, the move only
happens from ``approved``, and a redelivered approval of a notice already
``segmenting`` only publishes again the messages of its unfinished partitions,
which their owners acknowledge without running them twice. An audience that
cannot be resolved (an invalid specification) fails the notice with the
reason, instead of leaving it ``approved``.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError
from pymongo.errors import BulkWriteError

from alimi import duplicate_keys, notice_states, partitions, states, topology
from alimi.audience import AudienceSpec, to_query
from alimi.bus import Bus, Unprocessable
from alimi.messages import NoticeApproved, NoticePartition
from alimi.store import Store

log = logging.getLogger("alimi.segmenter.planner")


async def plan(
    store: Store,
    bus: Bus,
    event: NoticeApproved,
    *,
    people_per_partition: int,
    most_partitions: int,
) -> int:
    """Plan the notice ``event`` names (if it awaits it) and publish its partitions'
    messages; how many were published."""
    notice = await store.notices.find_one({"_id": event.notice_id})
    if notice is None:
        raise Unprocessable(f"notice {event.notice_id} does not exist")
    if notice["state"] == states.NOTICE_APPROVED:
        notice = await _split(store, notice, people_per_partition, most_partitions)
        if notice is None:
            return 0
    if notice["state"] != states.NOTICE_SEGMENTING:
        log.info(
            "notice not awaiting segmentation; nothing to do",
            extra={"notice_id": event.notice_id, "state": notice["state"]},
        )
        return 0
    published = 0
    async for part in store.partitions.find(
        {"notice_id": notice["_id"], "run": notice["run"], "state": {"$ne": partitions.DONE}},
        {"index": 1, "run": 1},
    ):
        await publish(bus, notice, part)
        published += 1
    log.info(
        "partitions published",
        extra={"notice_id": notice["_id"], "run": notice["run"], "published": published},
    )
    return published


async def publish(bus: Bus, notice: dict[str, Any], part: dict[str, Any]) -> None:
    message = NoticePartition(
        partition_id=part["_id"],
        notice_id=notice["_id"],
        incident_id=notice["incident_id"],
        run=part["run"],
        index=part["index"],
    )
    await bus.publish(
        topology.EVENTS,
        topology.NOTICE_PARTITION,
        message.to_bytes(),
        message_id=f"{part['_id']}:{datetime.now(UTC).timestamp():.3f}",
    )


async def _split(
    store: Store, notice: dict[str, Any], people_per_partition: int, most_partitions: int
) -> dict[str, Any] | None:
    """Write the partitions of the notice's next run and move it to ``segmenting``; the
    notice after (whoever planned it), or None if it failed."""
    try:
        spec = AudienceSpec.model_validate(notice["audience"])
        to_query(spec)
    except (ValidationError, ValueError, KeyError) as exc:
        await _fail(store, notice, f"the audience cannot be resolved: {exc}")
        return None
    size = await size_bound(store, spec)
    count = partitions.how_many(size, people_per_partition, most_partitions)
    run = int(notice.get("run") or 0) + 1
    docs = [
        partitions.document(notice, run=run, index=i, count=count, lo=lo, hi=hi)
        for i, (lo, hi) in enumerate(partitions.ranges(count))
    ]
    try:
        await store.partitions.insert_many(docs, ordered=False)
    except BulkWriteError as exc:  # planned before, up to a crash: they stay as they are
        duplicate_keys.collided(exc)
    moved = await notice_states.move(
        store,
        notice["_id"],
        "plan",
        changes={"run": run, "partitions": count, "planned_at": datetime.now(UTC)},
        unset={"started_at": "", "segmented_at": ""},
    )
    if moved is not None:
        log.info(
            "notice split into partitions",
            extra={"notice_id": notice["_id"], "run": run, "partitions": count, "at_most": size},
        )
        return moved
    return await store.notices.find_one({"_id": notice["_id"]})  # another replica planned it


async def size_bound(store: Store, spec: AudienceSpec) -> int:
    """At most how many people ``spec`` names, found without reading them: the ids it
    gives, its list's members, and for a filter the whole directory (the collection's
    estimated count, from its metadata).

    Partitions are cut from this bound, never from a count of the audience itself: a
    count reads every person once before anyone is told (2.4 s per 100,000 people on
    the development server, so 24 s at a million), and the segmenters read them again
    anyway. A narrow filter over a big directory gets more, smaller partitions than it
    needs (each a short query), never fewer.
    """
    if spec.filter is not None:
        return await store.subjects.estimated_document_count()
    size = len(set(spec.subject_ids))
    if spec.list_id is not None:
        found = await store.lists.find_one({"_id": spec.list_id}, {"members": 1})
        size += int((found or {}).get("members") or 0)
    return size


async def _fail(store: Store, notice: dict[str, Any], reason: str) -> None:
    failed = await notice_states.move(
        store, notice["_id"], "fail", changes={"failure": reason, "failed_at": datetime.now(UTC)}
    )
    if failed is not None:
        log.error("notice failed", extra={"notice_id": notice["_id"], "reason": reason})
