"""Trying people again later, without a consumer ever sleeping.

People whose attempt failed in a way that may succeed later (``retrying``)
are published as the batch's next attempt to ``retry.<channel>.<step>``, a
queue without consumers whose messages expire after the step's delay and flow
back to ``delivery.<channel>``. After the last step they are given up on: the
attempt records them ``failed`` with ``dead_lettered`` (:meth:`Retries.give_up`)
and their batch goes to ``dead.delivery.<channel>`` with the last error, from
where intake's replay can put them back. People held by another worker's
fresh claim are *parked* in ``retry.<channel>.held`` for the claim's lease.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass

from alimi import states, topology
from alimi.attempts import Outcome
from alimi.bus import ERROR_HEADER, Bus
from alimi.messages import DeliveryBatch, Recipient
from alimi_delivery.metrics import DEAD_LETTERED, RETRIED

log = logging.getLogger("alimi.delivery")

RETRY_SUFFIX = re.compile(r":a\d+$")
# What a batch id gains as its people are retried (``:a2``) or parked (``:held``), in any
# order and any number of times: people parked again and again keep one id.
HELD_SUFFIXES = re.compile(r"(?::a\d+|:held)+$")


@dataclass(frozen=True)
class RetryPolicy:
    """Delays of the retry steps (then the dead-letter queue), with jitter."""

    delays_s: tuple[float, ...] = (5.0, 30.0, 300.0)
    jitter: float = 0.2

    def delay(self, step: int, retry_after_s: float | None = None) -> float:
        base = self.delays_s[step - 1] * random.uniform(1 - self.jitter, 1 + self.jitter)
        return max(base, retry_after_s or 0.0)

    def exhausted(self, attempt: int) -> bool:
        """Is ``attempt`` the last one (no retry step left after it)?"""
        return attempt > len(self.delays_s)


def root_id(batch_id: str) -> str:
    """A batch id without its attempt suffix."""
    return RETRY_SUFFIX.sub("", batch_id)


def held_id(batch_id: str) -> str:
    """The id of the batch ``batch_id``'s held people are parked in: one ``:held``, however
    often they were retried or parked before."""
    return f"{HELD_SUFFIXES.sub('', batch_id)}:held"


def last_error(outcomes: Sequence[Outcome]) -> str:
    return "; ".join(sorted({f"{o.error_code} {o.error or ''}".strip() for o in outcomes}))


class Retries:
    def __init__(self, bus: Bus, channel: str, policy: RetryPolicy) -> None:
        self.bus = bus
        self.channel = channel
        self.policy = policy

    def give_up(self, batch: DeliveryBatch, outcomes: list[Outcome]) -> list[Outcome]:
        """``outcomes`` with the ``retrying`` ones ``failed`` and ``dead_lettered`` if this was
        the batch's last attempt; the others unchanged."""
        if not self.policy.exhausted(batch.attempt):
            return outcomes
        retrying = [o for o in outcomes if o.status == states.RETRYING]
        if not retrying:
            return outcomes
        error = f"gave up after {batch.attempt} attempts: {last_error(retrying)}"
        return [
            dataclasses.replace(o, status=states.FAILED, error=error, dead_lettered=True)
            if o.status == states.RETRYING
            else o
            for o in outcomes
        ]

    async def retry(
        self, batch: DeliveryBatch, people: Sequence[Recipient], failed: Sequence[Outcome]
    ) -> None:
        """Publish ``people`` (whose outcomes are ``failed``) as the next attempt, delayed."""
        if not people:
            return
        step = batch.attempt
        again = batch.model_copy(
            update={
                "batch_id": f"{root_id(batch.batch_id)}:a{step + 1}",
                "attempt": step + 1,
                "recipients": tuple(people),
            }
        )
        waits = [o.retry_after_s for o in failed if o.retry_after_s]
        delay = self.policy.delay(step, max(waits) if waits else None)
        await self.bus.publish(
            topology.RETRY,
            topology.retry_key(self.channel, step),
            again.to_bytes(),
            message_id=again.batch_id,
            expiration_s=delay,
        )
        RETRIED.labels(self.channel, str(step)).inc(len(people))
        log.warning(
            "recipients to be retried",
            extra={
                "batch_id": again.batch_id,
                "count": len(people),
                "delay_s": round(delay, 2),
                "error": last_error(failed),
            },
        )

    async def dead_letter(
        self, batch: DeliveryBatch, people: Sequence[Recipient], error: str
    ) -> None:
        """Publish ``people``'s batch to the channel's dead-letter queue with ``error``."""
        if not people:
            return
        dead = batch.model_copy(update={"recipients": tuple(people)})
        await self.bus.publish(
            topology.DEAD,
            topology.delivery_queue(self.channel),
            dead.to_bytes(),
            message_id=dead.batch_id,
            headers={ERROR_HEADER: error[:1000]},
        )
        DEAD_LETTERED.labels(self.channel).inc(len(people))
        log.error(
            "recipients dead-lettered after the last retry",
            extra={"batch_id": batch.batch_id, "count": len(people), "error": error},
        )

    async def park(self, batch: DeliveryBatch, people: Sequence[Recipient], lease_s: float) -> None:
        """Publish ``people`` (held by another claim) to come back once the lease is over.

        Their own queue, where every message waits the same lease: in a retry step's
        queue they would wait that step's delay instead (300 s behind a 60 s lease by
        default: a queue expires messages only at its head)."""
        if not people:
            return
        parked = batch.model_copy(
            update={"batch_id": held_id(batch.batch_id), "recipients": tuple(people)}
        )
        await self.bus.publish(
            topology.RETRY,
            topology.held_key(self.channel),
            parked.to_bytes(),
            message_id=parked.batch_id,
            expiration_s=lease_s,
        )
