"""The delivery-report body providers send (field names as the providers spell them).

Unknown fields are ignored so a provider can add some without breaking us; the
fields Alimi acts on are required. ``recipientNo`` is deliberately not read:
the receipt already knows its (masked) destination, and a phone number we
never parse is one we can never leak.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from alimi import states

CHANNELS = ("sms", "kakao")
MAX_REPORTS_PER_REQUEST = 1000

# provider status -> receipt status
RECEIPT_STATUS = {"DELIVERED": states.DELIVERED, "UNDELIVERED": states.UNDELIVERED}


class Report(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    message_id: str = Field(alias="messageId", min_length=1, max_length=200)
    # required but nullable: a provider sends null for a message sent without a
    # grouping key; such a report can match no receipt and counts as unknown
    grouping_key: str | None = Field(alias="recipientGroupingKey", min_length=1, max_length=300)
    status: Literal["DELIVERED", "UNDELIVERED"]
    result_code: str = Field(alias="resultCode", min_length=1, max_length=40)
    result_message: str = Field("", alias="resultMessage", max_length=1000)
    delivered_at: datetime = Field(alias="deliveredAt")

    @field_validator("result_code", mode="before")
    @classmethod
    def _code_as_text(cls, value: object) -> object:
        # some providers send numeric codes (1000 rather than "1000")
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @field_validator("delivered_at")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        # the contract says UTC: a time without an offset is taken as UTC
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    @property
    def receipt_status(self) -> str:
        return RECEIPT_STATUS[self.status]


class ReportBatch(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    reports: list[Report] = Field(min_length=1, max_length=MAX_REPORTS_PER_REQUEST)
