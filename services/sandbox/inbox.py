"""The record of every message the simulated gateways accepted.

Benchmarks push millions of messages through, so the record lives on disk
(:class:`Inbox`); each recipient is one small tuple, and the fields every
recipient of a request shares live in one Submission.
"""

from __future__ import annotations

import pickle
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Generic, NamedTuple, Protocol, TypeVar

from alimi.ids import provider_message_id

from .arrivals import Arrivals


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
        return provider_message_id(self.submission.request_id, self.recipient_seq)

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
        return provider_message_id(self.submission.request_id, self.recipient_seq)

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

CACHE_KIB = 8192  # SQLite's page cache per inbox: what the record may hold in memory
PICKLE = pickle.HIGHEST_PROTOCOL


class Inbox(Generic[M]):
    """Accepted messages in arrival order, found by recipientGroupingKey or number.

    They live in a private SQLite database on disk (deleted when the inbox is
    closed or the process ends) with a small page cache, so a benchmark's
    millions of messages cost disk, not memory: one row each, the message
    pickled, indexed by grouping key. ``arrivals`` wakes listings that wait for
    messages (:mod:`.arrivals`) each time messages are added.
    """

    def __init__(self) -> None:
        # "": a private, temporary on-disk database; its pages spill to disk past the cache
        self._db = sqlite3.connect("", isolation_level=None, check_same_thread=False)
        self._db.executescript(
            f"""
            PRAGMA cache_size = -{CACHE_KIB};
            PRAGMA journal_mode = OFF;
            PRAGMA synchronous = OFF;
            CREATE TABLE messages (
                seq INTEGER PRIMARY KEY,
                grouping_key TEXT,
                recipient_no TEXT NOT NULL,
                message BLOB NOT NULL
            );
            CREATE INDEX by_grouping_key ON messages (grouping_key);
            """
        )
        self._count = 0
        self.arrivals = Arrivals()

    def __len__(self) -> int:
        return self._count

    def add(self, messages: Iterable[M]) -> None:
        rows = [(m.grouping_key, m.recipient_no, pickle.dumps(m, PICKLE)) for m in messages]
        self._db.execute("BEGIN")
        self._db.executemany(
            "INSERT INTO messages (grouping_key, recipient_no, message) VALUES (?, ?, ?)", rows
        )
        self._db.execute("COMMIT")
        self._count += len(rows)
        self.arrivals.recorded()

    def find(self, recipient_no: str | None = None) -> Iterator[M]:
        """Messages in arrival order, optionally only those sent to ``recipient_no``
        (read as they are iterated)."""
        if recipient_no is None:
            cursor = self._db.execute("SELECT message FROM messages ORDER BY seq")
        else:
            cursor = self._db.execute(
                "SELECT message FROM messages WHERE recipient_no = ? ORDER BY seq", (recipient_no,)
            )
        return (pickle.loads(row[0]) for row in cursor)

    def count(self, recipient_no: str | None = None) -> int:
        """How many messages :meth:`find` would give, without reading them."""
        if recipient_no is None:
            return self._count
        (n,) = self._db.execute(
            "SELECT count(*) FROM messages WHERE recipient_no = ?", (recipient_no,)
        ).fetchone()
        return int(n)

    def with_grouping_key(self, key: str) -> Sequence[M]:
        """Messages that carried ``key`` as recipientGroupingKey, in arrival order (by index)."""
        rows = self._db.execute(
            "SELECT message FROM messages WHERE grouping_key = ? ORDER BY seq", (key,)
        ).fetchall()
        return tuple(pickle.loads(row[0]) for row in rows)

    def clear(self) -> int:
        """Forget every message; returns how many there were."""
        removed = self._count
        self._db.execute("DELETE FROM messages")
        self._count = 0
        return removed

    def close(self) -> None:
        self._db.close()
