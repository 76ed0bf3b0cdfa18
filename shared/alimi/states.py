"""The life cycles of notices and receipts (see the architecture notes)."""

from __future__ import annotations

# Notice: pending_approval -> approved -> segmenting -> sending -> completed
NOTICE_PENDING_APPROVAL = "pending_approval"
NOTICE_APPROVED = "approved"
NOTICE_SEGMENTING = "segmenting"
NOTICE_SENDING = "sending"
NOTICE_COMPLETED = "completed"
NOTICE_HALTED = "halted"
NOTICE_FAILED = "failed"

NOTICE_STATES = (
    NOTICE_PENDING_APPROVAL,
    NOTICE_APPROVED,
    NOTICE_SEGMENTING,
    NOTICE_SENDING,
    NOTICE_COMPLETED,
    NOTICE_HALTED,
    NOTICE_FAILED,
)

# Receipt: claimed -> sent -> delivered | undelivered; or failed, fell_back, skipped, halted.
# retrying: the last attempt failed in a way that may succeed later; a retry is queued.
CLAIMED = "claimed"
RETRYING = "retrying"
SENT = "sent"
DELIVERED = "delivered"
UNDELIVERED = "undelivered"
FAILED = "failed"
FELL_BACK = "fell_back"
SKIPPED = "skipped"
HALTED = "halted"

# A receipt in one of these states needs no more work from the pipeline.
FINAL_RECEIPT_STATES = frozenset({SENT, DELIVERED, UNDELIVERED, FAILED, SKIPPED, HALTED})
