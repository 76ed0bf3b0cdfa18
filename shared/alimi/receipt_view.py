"""A person's receipt as people read it: the receipt, its current attempt, its report.

Three documents make a receipt (:mod:`alimi.attempts`): the receipt itself
(who, which number masked, claimed when, by which attempt), the attempt's
entry for the person (status, the provider's message id or error) and, once
the provider reports delivery, the delivery report (``delivery_reports``,
keyed by the receipt id). :func:`compose` joins them into one
:class:`ReceiptView`; :func:`read` and :func:`of_notice` read many at a time,
a few queries per chunk of people rather than per person.

A report changes the status only when it is for the message the attempt
recorded (same provider message id) and the attempt says ``sent``: a report
for an earlier message, or for a person whose attempt is not written yet, is
not applied (the receipts service keeps the latter until it can be).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from alimi import attempts, states
from alimi.store import Store

IN_CHUNK = 50  # ids per $in: the development server matches each document against the list


@dataclass(frozen=True)
class ReceiptView:
    receipt_id: str
    notice_id: str
    subject_id: str
    status: str
    channel: str  # the channel of the current attempt ("none": decided before any)
    also_subject_ids: tuple[str, ...] = ()
    destination: str | None = None  # masked
    attempt_id: str | None = None
    attempt_kind: str | None = None
    attempt_at: datetime | None = None  # when the current attempt's outcome was written
    claimed_at: datetime | None = None
    entry: Mapping[str, Any] = field(default_factory=dict)  # the attempt's entry, if written
    report: Mapping[str, Any] | None = None  # the delivery report, if applied
    history: tuple[str, ...] = ()  # earlier attempts, oldest first
    fallback_from: str | None = None  # the channel that handed this person over, if any

    @property
    def message_id(self) -> str | None:
        value = self.entry.get("message_id")
        return str(value) if value else None

    @property
    def final(self) -> bool:
        return self.status in states.FINAL_RECEIPT_STATES

    def as_dict(self) -> dict[str, Any]:
        """The JSON shape the API answers with."""
        shown: dict[str, Any] = {
            "receipt_id": self.receipt_id,
            "subject_id": self.subject_id,
            "also_subject_ids": list(self.also_subject_ids),
            "status": self.status,
            "channel": self.channel,
            "destination": self.destination,
            "attempts": len(self.history) + (1 if self.attempt_id else 0),
        }
        if self.fallback_from:
            shown["fallback_from"] = self.fallback_from
        for name in ("message_id", "message_type", "error_code", "error", "reason", "detail"):
            if self.entry.get(name):
                shown[name] = self.entry[name]
        if self.attempt_at is not None and self.status != states.CLAIMED:
            shown["decided_at"] = self.attempt_at.isoformat()
        if self.report is not None:
            shown["report_code"] = self.report.get("code")
            at = self.report.get("delivered_at")
            if isinstance(at, datetime):
                shown["reported_at"] = at.isoformat()
        return shown


def report_applies(entry: Mapping[str, Any] | None, report: Mapping[str, Any] | None) -> bool:
    """Does ``report`` speak of the message ``entry`` recorded as sent?"""
    return (
        entry is not None
        and report is not None
        and entry.get("status") == states.SENT
        and bool(entry.get("message_id"))
        and report.get("message_id") == entry.get("message_id")
    )


def compose(
    receipt: Mapping[str, Any],
    attempt: Mapping[str, Any] | None,
    report: Mapping[str, Any] | None,
) -> ReceiptView:
    entry = attempts.entry_for(attempt, receipt["subject_id"])
    status = attempts.status_of(entry)
    applied = report if report_applies(entry, report) else None
    if applied is not None:
        status = str(applied["status"])
    channel = (attempt or {}).get("channel") or receipt.get("channel") or attempts.NO_CHANNEL
    return ReceiptView(
        receipt_id=receipt["_id"],
        notice_id=receipt["notice_id"],
        subject_id=receipt["subject_id"],
        status=status,
        channel=channel,
        also_subject_ids=tuple(receipt.get("also_subject_ids") or ()),
        destination=receipt.get("destination"),
        attempt_id=receipt.get("attempt"),
        attempt_kind=(attempt or {}).get("kind"),
        attempt_at=(attempt or {}).get("at") if entry is not None else None,
        claimed_at=receipt.get("claimed_at"),
        entry=entry or {},
        report=applied,
        history=tuple(receipt.get("history") or ()),
        fallback_from=receipt.get("fallback_from"),
    )


def chunks(items: Sequence[str], size: int = IN_CHUNK) -> Iterable[list[str]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


async def attempts_by_id(
    store: Store, attempt_ids: Iterable[str | None]
) -> dict[str, dict[str, Any]]:
    wanted = sorted({a for a in attempt_ids if a})
    found: dict[str, dict[str, Any]] = {}
    for part in chunks(wanted):
        async for doc in store.attempts.find({"_id": {"$in": part}}):
            found[doc["_id"]] = doc
    return found


async def reports_by_id(store: Store, receipt_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    wanted = list(receipt_ids)
    found: dict[str, dict[str, Any]] = {}
    for part in chunks(wanted):
        async for doc in store.delivery_reports.find({"_id": {"$in": part}}):
            found[doc["_id"]] = doc
    return found


async def join(
    store: Store, receipts: Sequence[Mapping[str, Any]], *, with_reports: bool = True
) -> list[ReceiptView]:
    """Views of ``receipts`` (documents already read), in their order."""
    found = await attempts_by_id(store, (r.get("attempt") for r in receipts))
    reports = (
        await reports_by_id(store, [r["_id"] for r in receipts if r.get("attempt") in found])
        if with_reports
        else {}
    )
    return [compose(r, found.get(r.get("attempt") or ""), reports.get(r["_id"])) for r in receipts]


async def read(
    store: Store, receipt_ids: Iterable[str], *, with_reports: bool = True
) -> dict[str, ReceiptView]:
    """receipt id -> view, for those of ``receipt_ids`` that exist."""
    views: dict[str, ReceiptView] = {}
    for part in chunks(list(dict.fromkeys(receipt_ids))):
        docs = await store.receipts.find({"_id": {"$in": part}}).to_list()
        for view in await join(store, docs, with_reports=with_reports):
            views[view.receipt_id] = view
    return views


async def of_notice(
    store: Store, notice_id: str, *, chunk: int = 500, with_reports: bool = True
) -> AsyncIterator[ReceiptView]:
    """Every receipt of a notice, streamed a chunk at a time (memory: one chunk)."""
    batch: list[dict[str, Any]] = []
    async for doc in store.receipts.find({"notice_id": notice_id}).batch_size(chunk):
        batch.append(doc)
        if len(batch) >= chunk:
            for view in await join(store, batch, with_reports=with_reports):
                yield view
            batch = []
    if batch:
        for view in await join(store, batch, with_reports=with_reports):
            yield view


def events(view: ReceiptView, found: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """What happened to the person, oldest first: one event per attempt (``found``: the
    attempt documents by id), then the delivery report."""
    chain = [*view.history, *([view.attempt_id] if view.attempt_id else [])]
    shown: list[dict[str, Any]] = []
    for attempt_id in chain:
        doc = found.get(attempt_id)
        entry = attempts.entry_for(doc, view.subject_id)
        if doc is None or entry is None:
            shown.append({"status": states.CLAIMED, "attempt": attempt_id})
            continue
        detail = entry.get("detail") or (
            f"{entry['error_code']} {entry.get('error') or ''}".strip()
            if entry.get("error_code")
            else entry.get("message_id") or ""
        )
        shown.append(
            {
                "at": doc["at"],
                "status": entry["status"],
                "channel": doc.get("channel"),
                "kind": doc.get("kind"),
                "detail": detail,
                "attempt": attempt_id,
            }
        )
    if view.report is not None:
        code = view.report.get("code")
        shown.append(
            {
                "at": view.report.get("applied_at"),
                "status": view.report["status"],
                "channel": view.channel,
                "kind": "report",
                "detail": f"{code} {view.report.get('message') or ''}".strip(),
            }
        )
    return shown


async def timelines(store: Store, views: Sequence[ReceiptView]) -> list[list[dict[str, Any]]]:
    """:func:`events` of each of ``views``, reading their attempts once for all of them."""
    found = await attempts_by_id(store, (a for v in views for a in (*v.history, v.attempt_id) if a))
    return [events(v, found) for v in views]
