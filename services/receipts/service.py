"""Applying delivery reports to receipts.

A report moves a receipt from ``sent`` to ``delivered`` or ``undelivered``,
and only when the receipt carries the report's provider message id. All the
reports of a request go in one unordered bulk write whose filters say exactly
that, so applying a report twice changes nothing.

Each update also stamps the request's ``report_id``. When the write matched
fewer receipts than there were reports, one ``find`` over the request's
receipt ids tells the outcome of each report: the receipts stamped with this
request's id were changed by it; of the others, a receipt already final with
the same message id is a duplicate report, one still ``claimed`` or
``retrying`` is not ready (the report raced ahead of Alimi recording
``sent``; the caller answers 503 so the provider retries), and anything else
is unknown: logged and counted, never an error the provider would retry
forever. A report with a null grouping key is unknown without being written.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pymongo import UpdateOne

from alimi import ids, states
from alimi.phone import mask_in_text
from alimi.store import Store
from alimi_receipts import metrics, repository
from alimi_receipts.models import Report

log = logging.getLogger("alimi.receipts")

RETRYING = states.RETRYING
NOT_YET_SENT = frozenset({states.CLAIMED, RETRYING})
REPORTED = frozenset({states.DELIVERED, states.UNDELIVERED})
LOGGED_UNKNOWN = 20  # unknown reports named in one log line; the rest are only counted


@dataclass
class Outcomes:
    """What became of each report of one request."""

    report_id: str
    accepted: int = 0
    duplicates: int = 0
    unknown: int = 0
    not_ready: int = 0
    changes: dict[str, int] = field(default_factory=dict)  # receipt status -> count
    waiting: list[Report] = field(default_factory=list)  # the reports not ready

    def then(self, again: Outcomes) -> Outcomes:
        """These outcomes after ``again``, the outcomes of this request's waiting reports
        applied once more: what is still not ready is what ``again`` found not ready."""
        changes = dict(self.changes)
        for status, n in again.changes.items():
            changes[status] = changes.get(status, 0) + n
        return Outcomes(
            report_id=self.report_id,
            accepted=self.accepted + again.accepted,
            duplicates=self.duplicates + again.duplicates,
            unknown=self.unknown + again.unknown,
            not_ready=again.not_ready,
            changes=changes,
            waiting=again.waiting,
        )


def _now() -> datetime:
    return datetime.now(UTC)


def selector(report: Report) -> dict[str, Any]:
    """The receipt a report may change: ``sent`` and carrying the report's message id."""
    return {
        "_id": report.grouping_key,
        "status": states.SENT,
        "provider_message_id": report.message_id,
    }


def change(report: Report, *, report_id: str, now: datetime) -> dict[str, Any]:
    """The update a report makes to its receipt: the final status and one event."""
    status = report.receipt_status
    message = mask_in_text(report.result_message)
    fields: dict[str, Any] = {
        "status": status,
        "report_code": report.result_code,
        "report_message": message,
        "reported_at": report.delivered_at,
        "report_id": report_id,
        "updated_at": now,
    }
    if status == states.DELIVERED:
        fields["delivered_at"] = report.delivered_at
    detail = f"{report.result_code} {message}".strip()
    return {"$set": fields, "$push": {"events": {"at": now, "status": status, "detail": detail}}}


def classify(report: Report, receipt: dict[str, Any] | None, *, report_id: str) -> str:
    """The outcome of ``report`` given its receipt as read after the bulk write."""
    if receipt is None:
        return metrics.UNKNOWN
    status = receipt.get("status")
    same_message = receipt.get("provider_message_id") == report.message_id
    if same_message and status in REPORTED and receipt.get("report_id") == report_id:
        return metrics.ACCEPTED
    if status in NOT_YET_SENT:
        return metrics.NOT_READY
    if not same_message:
        return metrics.UNKNOWN
    if status in REPORTED:
        return metrics.DUPLICATE
    if status == states.SENT:
        # recorded as sent between our write and our read: a retry will apply it
        return metrics.NOT_READY
    return metrics.UNKNOWN  # failed, skipped, halted: a report cannot revive it


async def apply_reports(
    store: Store,
    *,
    channel: str,
    reports: Sequence[Report],
    now: datetime | None = None,
    report_id: str | None = None,
) -> Outcomes:
    """Apply ``reports`` received on ``channel``'s endpoint; count and return the outcomes.

    ``report_id`` is the request's stamp, new unless the request's waiting
    reports are applied again.
    """
    outcomes = Outcomes(report_id=report_id or ids.new_id("rpt"))
    unknown: list[dict[str, str | None]] = []
    unique: dict[tuple[str, str], Report] = {}
    for report in reports:
        if report.grouping_key is None:
            unknown.append({"receipt_id": None, "message_id": report.message_id})
        elif unique.setdefault((report.grouping_key, report.message_id), report) is not report:
            outcomes.duplicates += 1  # the same report twice in one request
    verdicts = await _apply(store, unique, report_id=outcomes.report_id, now=now or _now())
    for ((receipt_id, message_id), report), verdict in zip(unique.items(), verdicts, strict=True):
        if verdict == metrics.ACCEPTED:
            outcomes.accepted += 1
            status = report.receipt_status
            outcomes.changes[status] = outcomes.changes.get(status, 0) + 1
        elif verdict == metrics.DUPLICATE:
            outcomes.duplicates += 1
        elif verdict == metrics.NOT_READY:
            outcomes.not_ready += 1
            outcomes.waiting.append(report)
        else:
            unknown.append({"receipt_id": receipt_id, "message_id": message_id})
    outcomes.unknown = len(unknown)
    _count(channel, outcomes)
    if unknown:
        log.warning(
            "delivery reports for no known sent message",
            extra={
                "channel": channel,
                "report_id": outcomes.report_id,
                "unknown": len(unknown),
                "examples": unknown[:LOGGED_UNKNOWN],
            },
        )
    if outcomes.not_ready:
        log.info(
            "delivery reports ahead of their receipts (not yet recorded as sent)",
            extra={
                "channel": channel,
                "report_id": outcomes.report_id,
                "count": outcomes.not_ready,
            },
        )
    return outcomes


async def _apply(
    store: Store, reports: dict[tuple[str, str], Report], *, report_id: str, now: datetime
) -> list[str]:
    """One bulk write, then (only if some did not match) one read: the outcome of each report."""
    ops = [
        UpdateOne(selector(r), change(r, report_id=report_id, now=now)) for r in reports.values()
    ]
    if await repository.apply(store, ops) == len(ops):
        return [metrics.ACCEPTED] * len(ops)
    found = await repository.find_states(store, [receipt_id for receipt_id, _ in reports])
    return [classify(r, found.get(k), report_id=report_id) for (k, _), r in reports.items()]


def _count(channel: str, outcomes: Outcomes) -> None:
    for outcome, n in (
        (metrics.ACCEPTED, outcomes.accepted),
        (metrics.DUPLICATE, outcomes.duplicates),
        (metrics.UNKNOWN, outcomes.unknown),
        (metrics.NOT_READY, outcomes.not_ready),
    ):
        if n:
            metrics.REPORTS.labels(channel, outcome).inc(n)
    for status, n in outcomes.changes.items():
        metrics.STATUS_CHANGES.labels(channel, status).inc(n)
