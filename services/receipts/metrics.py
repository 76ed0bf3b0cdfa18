"""Every metric of the receipts service. Labels are bounded: channel, outcome, status."""

from __future__ import annotations

from prometheus_client import Counter

from alimi import states

ACCEPTED = "accepted"
DUPLICATE = "duplicate"
UNKNOWN = "unknown"
NOT_READY = "not_ready"
REJECTED_SIGNATURE = "rejected_signature"
INVALID = "invalid"
BUSY = "busy"  # turned away (503) after waiting for a turn to be applied
OUTCOMES = (ACCEPTED, DUPLICATE, UNKNOWN, NOT_READY, REJECTED_SIGNATURE, INVALID, BUSY)

REPORTS = Counter(
    "alimi_reports_total",
    "Delivery reports received, by outcome (a refused request counts once: rejected_signature,"
    " invalid, busy)",
    ["channel", "outcome"],
)
STATUS_CHANGES = Counter(
    "alimi_receipts_status_changes_total",
    "Receipts a delivery report moved from sent to a final status",
    ["channel", "status"],
)


def declare(channels: tuple[str, ...]) -> None:
    """Create every label combination at zero so dashboards and alerts see them from the start."""
    for channel in channels:
        for outcome in OUTCOMES:
            REPORTS.labels(channel, outcome)
        for status in (states.DELIVERED, states.UNDELIVERED):
            STATUS_CHANGES.labels(channel, status)
