"""The delivery-report body."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from alimi_receipts.models import ReportBatch


def entry(**changes: Any) -> dict[str, Any]:
    return {
        "messageId": "20260101093000abc-1",
        "recipientGroupingKey": "ntc_x:cust-1",
        "recipientNo": "01012345678",
        "resultCode": "1000",
        "status": "DELIVERED",
        "resultMessage": "success",
        "deliveredAt": "2026-01-01T00:00:05Z",
    } | changes


def errors(body: Any) -> list[tuple[tuple[int | str, ...], str]]:
    with pytest.raises(ValidationError) as caught:
        ReportBatch.model_validate(body)
    return [(e["loc"], e["type"]) for e in caught.value.errors()]


def test_when_a_report_follows_the_contract__then_it_is_read_with_its_receipt_status() -> None:
    [report] = ReportBatch.model_validate({"reports": [entry()]}).reports
    assert report.message_id == "20260101093000abc-1"
    assert report.grouping_key == "ntc_x:cust-1"
    assert (report.result_code, report.result_message) == ("1000", "success")
    assert report.delivered_at == datetime(2026, 1, 1, 0, 0, 5, tzinfo=UTC)
    assert report.receipt_status == "delivered"
    assert ReportBatch.model_validate({"reports": [entry(status="UNDELIVERED")]}).reports[
        0
    ].receipt_status == ("undelivered")


def test_when_a_report_has_fields_we_do_not_know__then_they_are_ignored() -> None:
    batch = ReportBatch.model_validate({"reports": [entry(newField=1)], "version": 2})
    dumped = batch.reports[0].model_dump()
    assert "newField" not in dumped
    assert "recipientNo" not in dumped and "recipient_no" not in dumped


@pytest.mark.parametrize(
    "field", ["messageId", "recipientGroupingKey", "status", "resultCode", "deliveredAt"]
)
def test_when_a_required_field_is_missing__then_it_is_named_by_its_wire_name(field: str) -> None:
    body = entry()
    del body[field]
    assert errors({"reports": [entry(), body]}) == [(("reports", 1, field), "missing")]


def test_when_the_grouping_key_is_null__then_the_report_is_read_without_a_receipt_id() -> None:
    batch = ReportBatch.model_validate({"reports": [entry(recipientGroupingKey=None)]})
    assert batch.reports[0].grouping_key is None


def test_when_result_message_is_missing__then_it_is_empty() -> None:
    body = entry()
    del body["resultMessage"]
    assert ReportBatch.model_validate({"reports": [body]}).reports[0].result_message == ""


def test_when_status_is_not_delivered_or_undelivered__then_it_is_refused() -> None:
    assert errors({"reports": [entry(status="PENDING")]}) == [
        (("reports", 0, "status"), "literal_error")
    ]


@pytest.mark.parametrize("reports", [[], [entry()] * 1001])
def test_when_a_request_has_no_reports_or_too_many__then_it_is_refused(
    reports: list[Any],
) -> None:
    [(loc, _)] = errors({"reports": reports})
    assert loc == ("reports",)


def test_when_the_body_has_no_reports_list__then_reports_is_named() -> None:
    assert errors({"report": []}) == [(("reports",), "missing")]


def test_when_result_code_is_a_number__then_it_is_read_as_text() -> None:
    assert ReportBatch.model_validate({"reports": [entry(resultCode=3015)]}).reports[
        0
    ].result_code == ("3015")


def test_when_delivered_at_has_no_offset_or_another_one__then_it_is_stored_in_utc() -> None:
    naive, seoul = ReportBatch.model_validate(
        {
            "reports": [
                entry(deliveredAt="2026-01-01T09:00:00"),
                entry(deliveredAt="2026-01-01T09:00:00+09:00"),
            ]
        }
    ).reports
    assert naive.delivered_at == datetime(2026, 1, 1, 9, tzinfo=UTC)
    assert seoul.delivered_at == datetime(2026, 1, 1, 0, tzinfo=UTC)
    assert seoul.delivered_at.tzinfo == UTC
