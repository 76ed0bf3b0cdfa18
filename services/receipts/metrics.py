"""Every metric of the receipts service. Labels are bounded: channel, outcome, status."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

from alimi import states

RECEIVED = "received"  # kept in the inbox (each report of an answered request)
ACCEPTED = "accepted"  # applied: the receipt is now delivered or undelivered
DUPLICATE = "duplicate"
UNKNOWN = "unknown"
WAITING = "waiting"  # not applicable yet (its receipt has not caught up); kept, tried again
EXPIRED = "expired"  # waited ALIMI_REPORT_MAX_WAIT_S for its receipt; given up
REJECTED_SIGNATURE = "rejected_signature"
INVALID = "invalid"
UNAVAILABLE = "unavailable"  # the inbox could not store the request (503)
OUTCOMES = (
    RECEIVED,
    ACCEPTED,
    DUPLICATE,
    UNKNOWN,
    WAITING,
    EXPIRED,
    REJECTED_SIGNATURE,
    INVALID,
    UNAVAILABLE,
)

REPORTS = Counter(
    "alimi_reports_total",
    "Delivery reports, by outcome (a refused request counts once: rejected_signature, invalid,"
    " unavailable; waiting counts each time a report is found not applicable yet)",
    ["channel", "outcome"],
)
STATUS_CHANGES = Counter(
    "alimi_receipts_status_changes_total",
    "Receipts a delivery report moved from sent to a final status",
    ["channel", "status"],
)
INBOX_REPORTS = Gauge("alimi_report_inbox_reports", "Delivery reports received and not yet applied")
INBOX_DOCUMENTS = Gauge(
    "alimi_report_inbox_requests", "Report requests received and not yet wholly applied"
)


def declare(channels: tuple[str, ...]) -> None:
    """Create every label combination at zero so dashboards and alerts see them from the start."""
    for channel in channels:
        for outcome in OUTCOMES:
            REPORTS.labels(channel, outcome)
        for status in (states.DELIVERED, states.UNDELIVERED):
            STATUS_CHANGES.labels(channel, status)
