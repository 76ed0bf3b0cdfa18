"""The segmenter process: plans approved notices into partitions, segments partitions,
tracks completion (one replica at a time), exports the system's gauges."""

from __future__ import annotations

from aio_pika.abc import AbstractIncomingMessage

from alimi import leases, topology
from alimi.counters import Shards
from alimi.messages import NoticeApproved, NoticePartition
from alimi.store import ATTEMPTS, LEASES, NOTICE_COUNTS, PARTITIONS, RECEIPTS
from alimi.worker import WorkerRuntime
from alimi_segmenter import planner, progress, service
from alimi_segmenter.monitor import Monitor
from alimi_segmenter.monitor import run as run_monitor
from alimi_segmenter.settings import SegmenterSettings


def build(settings: SegmenterSettings) -> WorkerRuntime:
    # The segmenter writes receipts, attempts and counters of the people it skips; their
    # indexes are delivery's, ensured here too (idempotent) so it can start on its own.
    runtime = WorkerRuntime(
        settings,
        owned_collections=(PARTITIONS, LEASES, RECEIPTS, ATTEMPTS, NOTICE_COUNTS),
        grace_s=settings.drain_grace_s,
    )
    shards = Shards.for_process("segmenter", slots=settings.prefetch)
    owner = leases.owner_id("segmenter")
    service.declare_metrics()

    async def on_notice_approved(event: NoticeApproved, _: AbstractIncomingMessage) -> None:
        await planner.plan(
            runtime.store,
            runtime.bus,
            event,
            people_per_partition=settings.partition_people,
            most_partitions=settings.max_partitions,
        )

    async def on_partition(message: NoticePartition, _: AbstractIncomingMessage) -> None:
        await service.segment_partition(
            runtime.store,
            runtime.bus,
            message,
            owner=owner,
            lease_s=settings.partition_lease_s,
            batch_size=settings.batch_size,
            keyring=settings.phone_keyring,
            shards=shards,
        )

    runtime.consume(topology.SEGMENTER_QUEUE, NoticeApproved, on_notice_approved, prefetch=1)
    runtime.consume(
        topology.PARTITIONS_QUEUE, NoticePartition, on_partition, prefetch=settings.prefetch
    )
    tracker = progress.Tracker(
        runtime.store,
        runtime.bus,
        reports_every_s=settings.reports_every_s,
        reports_cutoff_s=settings.reports_cutoff_s,
    )
    lease = leases.Named(
        runtime.store,
        progress.TRACKER_LEASE,
        owner,
        ttl_s=max(10.0, 5 * settings.progress_interval_s),
    )
    runtime.loop(lambda: progress.run(tracker, settings.progress_interval_s, lease=lease))
    monitor = Monitor(runtime.store, runtime.bus)
    runtime.loop(lambda: run_monitor(monitor, settings.monitor_interval_s))
    return runtime
