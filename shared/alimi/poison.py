"""Messages that keep failing end in their dead-letter queue instead of looping.

When a handler fails, :class:`~alimi.bus.Consumer` puts the message back after
a pause, and counts the failure in the message itself: RabbitMQ cannot change
the headers of a message it requeues, so the consumer publishes the same body
again to the same queue with ``x-alimi-failures`` raised, then acks the
delivery it had (a crash between the two leaves a duplicate, which the
handlers already take: claims and leases). The pause grows with each failure
(:meth:`PoisonPolicy.pause`: 1, 2, 4, 8, 16, then 30 s). The
``ALIMI_DELIVERY_LIMIT``-th failure (default 10) dead-letters the message to
``dead.<queue>`` with ``x-alimi-reason`` (how often it failed) and
``x-alimi-error`` (the last error), counts it in ``alimi_poison_messages_total``
(alert ``AlimiPoisonMessages``), and the usual replay of a notice's dead
letters puts it back.

Failures that say nothing about the message (the database has no server to
select, a connection dropped, the broker channel closed) are paused and tried
again without being counted: an outage does not poison every message in
flight.

A message that kills its consumer's process never reaches the consumer's
count. Quorum queues count deliveries themselves: their ``x-delivery-limit``
(:data:`BROKER_DELIVERY_LIMIT`, above any consumer limit) dead-letters such a
message to the same queue; classic queues cannot.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiormq
from prometheus_client import Counter
from pymongo.errors import AutoReconnect, NetworkTimeout

FAILURES_HEADER = "x-alimi-failures"
REASON_HEADER = "x-alimi-reason"
# A quorum queue's own delivery limit: a safety net above every consumer's limit (the
# consumer's republished copy starts the broker's count again). All services must declare
# the same value, so it is a constant, not a setting.
BROKER_DELIVERY_LIMIT = 100

POISON = Counter(
    "alimi_poison_messages_total",
    "Messages dead-lettered after failing ALIMI_DELIVERY_LIMIT times, by queue",
    ["queue"],
)


@dataclass(frozen=True)
class PoisonPolicy:
    """How often a message may fail, and how long it waits after each failure."""

    limit: int = 10
    first_pause_s: float = 1.0
    longest_pause_s: float = 30.0

    def pause(self, failures: int) -> float:
        """The pause after the ``failures``-th failure: doubling, up to the longest."""
        return min(self.first_pause_s * 2 ** max(failures - 1, 0), self.longest_pause_s)

    def exhausted(self, failures: int) -> bool:
        return failures >= self.limit


def failures_of(headers: Mapping[str, Any] | None) -> int:
    """How often the message failed before (its ``x-alimi-failures``; 0 if none or bad)."""
    value = (headers or {}).get(FAILURES_HEADER)
    try:
        return max(int(value), 0) if value is not None else 0
    except (TypeError, ValueError):
        return 0


def blames_the_message(exc: BaseException) -> bool:
    """Does ``exc`` count against the message? Not when a dependency could not be reached
    at all (a timeout still does: the message may be what makes the call slow)."""
    if isinstance(exc, NetworkTimeout):
        return True
    return not isinstance(exc, AutoReconnect | aiormq.exceptions.AMQPError | ConnectionError)


def retry_headers(headers: Mapping[str, Any] | None, failures: int) -> dict[str, Any]:
    """The headers of the copy put back after a failure: the count, the rest as they were."""
    return {**dict(headers or {}), FAILURES_HEADER: failures}


def dead_letter_headers(failures: int, error: str) -> dict[str, str]:
    return {REASON_HEADER: f"failed {failures} times", "x-alimi-error": error[:1000]}


def describe(exc: BaseException) -> str:
    """The error as it goes in a log line and a header: its type and its words."""
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
