"""How a report is classified against its receipt as read after the bulk write."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from alimi_receipts.models import Report
from alimi_receipts.service import change, classify, selector

REPORT = Report.model_validate(
    {
        "messageId": "req-1",
        "recipientGroupingKey": "ntc_x:cust-1",
        "resultCode": "1000",
        "status": "DELIVERED",
        "resultMessage": "blocked 010-1234-5678",
        "deliveredAt": "2026-01-01T00:00:05Z",
    }
)
OURS = "rpt_ours"


@pytest.mark.parametrize(
    ("receipt", "outcome"),
    [
        (None, "unknown"),
        ({"status": "delivered", "provider_message_id": "req-1", "report_id": OURS}, "accepted"),
        (
            {"status": "delivered", "provider_message_id": "req-1", "report_id": "rpt_x"},
            "duplicate",
        ),
        ({"status": "undelivered", "provider_message_id": "req-1"}, "duplicate"),
        ({"status": "delivered", "provider_message_id": "req-9"}, "unknown"),
        ({"status": "sent", "provider_message_id": "req-9"}, "unknown"),
        ({"status": "claimed"}, "not_ready"),
        ({"status": "retrying", "provider_message_id": "req-0"}, "not_ready"),
        ({"status": "sent", "provider_message_id": "req-1"}, "not_ready"),
        ({"status": "failed", "provider_message_id": "req-1"}, "unknown"),
        ({"status": "halted"}, "unknown"),
    ],
)
def test_when_a_report_did_not_match__then_its_receipt_says_why(
    receipt: dict[str, Any] | None, outcome: str
) -> None:
    assert classify(REPORT, receipt, report_id=OURS) == outcome


def test_when_a_report_is_applied__then_only_a_sent_receipt_of_that_message_matches() -> None:
    assert selector(REPORT) == {
        "_id": "ntc_x:cust-1",
        "status": "sent",
        "provider_message_id": "req-1",
    }


def test_when_a_report_is_applied__then_the_receipt_gets_its_result_with_phones_masked() -> None:
    now = datetime(2026, 1, 1, 0, 1, tzinfo=UTC)
    update = change(REPORT, report_id=OURS, now=now)
    assert update["$set"] == {
        "status": "delivered",
        "report_code": "1000",
        "report_message": "blocked 01*****5678",
        "reported_at": REPORT.delivered_at,
        "delivered_at": REPORT.delivered_at,
        "report_id": OURS,
        "updated_at": now,
    }
    assert update["$push"] == {
        "events": {"at": now, "status": "delivered", "detail": "1000 blocked 01*****5678"}
    }
