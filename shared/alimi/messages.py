"""Typed, versioned messages on the bus.

Every message carries ``kind`` and ``v`` (schema version). A consumer parses a
body with :func:`parse`, which raises :class:`InvalidMessage` for anything it
cannot trust (bad JSON, unknown kind or version, a field that fails
validation) so the consumer can dead-letter it instead of crashing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

Channel = Literal["sms", "kakao", "slack"]
CHANNELS: tuple[Channel, ...] = ("sms", "kakao", "slack")


class _Message(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()


class NoticeApproved(_Message):
    """A notice may be sent: the segmenter resolves its audience."""

    kind: Literal["notice.approved"] = "notice.approved"
    v: Literal[1] = 1
    notice_id: str = Field(min_length=1, max_length=80)
    incident_id: str = Field(min_length=1, max_length=80)
    approved_at: datetime


class NoticePartition(_Message):
    """One partition of an approved notice's audience is to be segmented (any replica)."""

    kind: Literal["notice.partition"] = "notice.partition"
    v: Literal[1] = 1
    partition_id: str = Field(min_length=1, max_length=120)
    notice_id: str = Field(min_length=1, max_length=80)
    incident_id: str = Field(min_length=1, max_length=80)
    run: int = Field(ge=1)
    index: int = Field(ge=0)


class Recipient(BaseModel):
    """One person in a delivery batch, deduplicated by phone number."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    subject_id: str = Field(min_length=1, max_length=200)
    phone: str = Field(pattern=r"^\+[1-9]\d{7,14}$")
    name: str = Field("", max_length=200)
    locale: str = Field("ko", max_length=16)
    # Other subjects in the audience who share this phone number: they are
    # reached by this one message and recorded on its receipt.
    also_subject_ids: tuple[str, ...] = ()
    # Channels to try, in order, if this batch's channel cannot reach the
    # person (Kakao: not a KakaoTalk user, blocked): the fallback chain.
    fallback: tuple[Channel, ...] = ()


class DeliveryBatch(_Message):
    """Up to ~100 recipients of one notice on one channel."""

    kind: Literal["delivery.batch"] = "delivery.batch"
    v: Literal[1] = 1
    batch_id: str = Field(min_length=1, max_length=120)
    notice_id: str = Field(min_length=1, max_length=80)
    incident_id: str = Field(min_length=1, max_length=80)
    channel: Channel
    attempt: int = Field(1, ge=1, le=100)
    recipients: tuple[Recipient, ...] = Field(min_length=1, max_length=1000)


StaffStage = Literal["started", "milestone", "completed", "reports", "final"]


class StaffUpdate(_Message):
    """Tell the incident's staff channel (Slack) where a notice stands.

    ``started``: sending begins; ``milestone``: ``percent`` of the notice's
    people are final; ``completed``: all are. After completion the providers'
    delivery reports still come in: ``reports`` brings the summary up to date
    with them, and ``final`` says they are all in (or that the wait for them is
    over).
    The Slack worker reads the counts from MongoDB when it posts, so a late or
    repeated update never shows stale numbers, and it posts each stage once.
    """

    kind: Literal["staff.update"] = "staff.update"
    v: Literal[1] = 1
    notice_id: str = Field(min_length=1, max_length=80)
    incident_id: str = Field(min_length=1, max_length=80)
    stage: StaffStage
    percent: int = Field(0, ge=0, le=100)


AnyMessage = Annotated[
    NoticeApproved | NoticePartition | DeliveryBatch | StaffUpdate, Field(discriminator="kind")
]
_ADAPTER: TypeAdapter[NoticeApproved | NoticePartition | DeliveryBatch | StaffUpdate] = TypeAdapter(
    AnyMessage
)

M = TypeVar("M", bound=_Message)


class InvalidMessage(ValueError):
    """A body that is not a valid message of a known kind and version."""


def parse(body: bytes, expected: type[M]) -> M:
    try:
        message = _ADAPTER.validate_json(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise InvalidMessage(f"{where}: {first['msg']} ({exc.error_count()} problem(s))") from None
    if not isinstance(message, expected):
        raise InvalidMessage(f"expected {expected.__name__}, got kind {message.kind!r}")
    return message
