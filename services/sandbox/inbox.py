"""In-memory record of every message the simulated gateways accepted.

Benchmarks push millions of messages through, so each recipient costs one small
tuple; the fields every recipient of a request shares live in one Submission.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, NamedTuple, Protocol, TypeVar


@dataclass(frozen=True, slots=True)
class Submission:
    """What all recipients of one accepted API request have in common."""

    request_id: str
    type: str  # "SMS" or "LMS"
    sender_no: str
    title: str | None
    body: str
    received_at: str  # ISO-8601, UTC


class Message(NamedTuple):
    submission: Submission
    recipient_seq: int
    recipient_no: str
    country_code: str
    grouping_key: str | None
    body: str | None = None  # this recipient's text when the request was a template

    @property
    def message_id(self) -> str:
        return f"{self.submission.request_id}-{self.recipient_seq}"

    def as_dict(self) -> dict[str, Any]:
        submission = self.submission
        return {
            "message_id": self.message_id,
            "request_id": submission.request_id,
            "type": submission.type,
            "recipient_no": self.recipient_no,
            "country_code": self.country_code,
            "grouping_key": self.grouping_key,
            "sender_no": submission.sender_no,
            "title": submission.title,
            "body": submission.body if self.body is None else self.body,
            "received_at": submission.received_at,
        }


@dataclass(frozen=True, slots=True)
class KakaoSubmission:
    """What all recipients of one accepted AlimTalk request have in common."""

    request_id: str
    sender_key: str
    template_code: str
    received_at: str  # ISO-8601, UTC
    sender_grouping_key: str | None = None


class KakaoMessage(NamedTuple):
    submission: KakaoSubmission
    recipient_seq: int
    recipient_no: str
    grouping_key: str | None
    text: str  # the template with every #{var} filled
    buttons: tuple[dict[str, Any], ...] = ()
    undelivered: bool = False  # decided on acceptance: reported (and queried) as 3016

    @property
    def message_id(self) -> str:
        return f"{self.submission.request_id}-{self.recipient_seq}"

    def as_dict(self) -> dict[str, Any]:
        submission = self.submission
        return {
            "message_id": self.message_id,
            "request_id": submission.request_id,
            "sender_key": submission.sender_key,
            "template_code": submission.template_code,
            "recipient_no": self.recipient_no,
            "grouping_key": self.grouping_key,
            "text": self.text,
            "buttons": list(self.buttons),
            "received_at": submission.received_at,
        }


class Recorded(Protocol):
    @property
    def recipient_no(self) -> str: ...

    @property
    def grouping_key(self) -> str | None: ...

    def as_dict(self) -> dict[str, Any]: ...


M = TypeVar("M", bound=Recorded)


class Inbox(Generic[M]):
    """Accepted messages in arrival order, indexed by recipientGroupingKey."""

    def __init__(self) -> None:
        self._messages: list[M] = []
        self._by_key: dict[str, list[M]] = {}

    def __len__(self) -> int:
        return len(self._messages)

    def add(self, messages: Iterable[M]) -> None:
        start = len(self._messages)
        self._messages.extend(messages)
        by_key = self._by_key
        for message in self._messages[start:]:
            key = message.grouping_key
            if key is not None:
                by_key.setdefault(key, []).append(message)

    def find(self, recipient_no: str | None = None) -> Iterable[M]:
        """Messages in arrival order, optionally only those sent to ``recipient_no``."""
        if recipient_no is None:
            return iter(self._messages)
        return (m for m in self._messages if m.recipient_no == recipient_no)

    def with_grouping_key(self, key: str) -> Sequence[M]:
        """Messages that carried ``key`` as recipientGroupingKey, in arrival order (O(1))."""
        return tuple(self._by_key.get(key, ()))

    def clear(self) -> int:
        """Forget every message; returns how many there were."""
        removed = len(self._messages)
        self._messages = []
        self._by_key = {}
        return removed
