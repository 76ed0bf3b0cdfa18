"""The segmenter process: consumes ``notice.approved``, tracks completion."""

from __future__ import annotations

from aio_pika.abc import AbstractIncomingMessage

from alimi import topology
from alimi.counters import Shards
from alimi.messages import NoticeApproved
from alimi.store import ATTEMPTS, NOTICE_COUNTS, RECEIPTS
from alimi.worker import WorkerRuntime
from alimi_segmenter import progress
from alimi_segmenter.monitor import Monitor
from alimi_segmenter.monitor import run as run_monitor
from alimi_segmenter.service import segment_notice
from alimi_segmenter.settings import SegmenterSettings


def build(settings: SegmenterSettings) -> WorkerRuntime:
    # The segmenter writes receipts, attempts and counters of the people it skips; their
    # indexes are delivery's, ensured here too (idempotent) so it can start on its own.
    runtime = WorkerRuntime(
        settings,
        owned_collections=(RECEIPTS, ATTEMPTS, NOTICE_COUNTS),
        grace_s=settings.drain_grace_s,
    )
    shards = Shards.for_process("segmenter", slots=settings.prefetch)

    async def on_notice_approved(event: NoticeApproved, _: AbstractIncomingMessage) -> None:
        await segment_notice(
            runtime.store,
            runtime.bus,
            notice_id=event.notice_id,
            batch_size=settings.batch_size,
            keyring=settings.phone_keyring,
            shards=shards,
        )

    runtime.consume(
        topology.SEGMENTER_QUEUE, NoticeApproved, on_notice_approved, prefetch=settings.prefetch
    )
    tracker = progress.Tracker(
        runtime.store,
        runtime.bus,
        reports_every_s=settings.reports_every_s,
        reports_cutoff_s=settings.reports_cutoff_s,
    )
    runtime.loop(lambda: progress.run(tracker, settings.progress_interval_s))
    monitor = Monitor(runtime.store, runtime.bus)
    runtime.loop(lambda: run_monitor(monitor, settings.monitor_interval_s))
    return runtime
