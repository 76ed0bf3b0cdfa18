"""What a worker may still do with an attempt's claim: call the provider, record as is.

Another worker may take a claim's people over once the claim's worker is gone
(its heartbeat is over, :mod:`heartbeat`) or the claim is older than the lease.
So a worker starts a provider call only while both still vouch for it past the
call's timeout (:meth:`Vouching.may_call`; a call not made is :func:`withheld`:
its people are retried, nothing in doubt). And it records an attempt as is only
while both vouch for it past :data:`RECORD_S` (:meth:`Vouching.may_record`);
otherwise only the people it still holds are recorded and counted
(:func:`claims.record_if_held`), so nobody taken over meanwhile counts twice.
"""

from __future__ import annotations

import logging
import time
from contextvars import ContextVar
from typing import Any

from alimi_delivery import metrics
from alimi_delivery.heartbeat import MARGIN_S, Heartbeat
from alimi_delivery.provider_client import ProviderResult

log = logging.getLogger("alimi.delivery")

# The longest a record is expected to take.
RECORD_S = 5.0
WITHHELD = "withheld"  # a call not made: this worker could not vouch for it (error code)

# The monotonic time by which the current attempt's provider calls must have ended: its
# claim's lease less a margin (each batch is handled in its own task, with its own value).
_calls_end_by: ContextVar[float] = ContextVar("calls_end_by", default=float("inf"))


class Vouching:
    def __init__(self, heartbeat: Heartbeat, *, lease_s: float) -> None:
        self.heartbeat = heartbeat  # its call_s is the provider's timeout
        self.lease_s = lease_s

    def begin(self) -> float:
        """An attempt is about to claim its people: the moment it does (monotonic)."""
        claimed = time.monotonic()
        _calls_end_by.set(claimed + self.lease_s - MARGIN_S)
        return claimed

    async def may_call(self) -> bool:
        """May a provider call start now? Only if it ends (at its timeout) while both this
        worker's heartbeat and the current attempt's claim vouch for it."""
        ends = time.monotonic() + self.heartbeat.call_s + MARGIN_S
        return ends <= _calls_end_by.get() and await self.heartbeat.confirmed()

    def may_record(self, claimed: float) -> bool:
        """Can nobody take the attempt's people over while its record is written (for
        ``RECORD_S``)? Its heartbeat and its claim (made at ``claimed``) both still vouch."""
        ends = time.monotonic() + RECORD_S
        return ends <= claimed + self.lease_s - MARGIN_S and self.heartbeat.covers(RECORD_S)


def withheld(channel: str, recipients: int) -> list[ProviderResult[Any]]:
    """The results of a call not made: everyone retried, nothing in doubt."""
    metrics.WITHHELD.labels(channel).inc(recipients)
    log.warning(
        "provider call withheld: this worker could not vouch for it until its timeout",
        extra={"channel": channel, "count": recipients},
    )
    error = (
        "not sent: this worker's heartbeat or claim would have run out before the call's "
        "timeout (ALIMI_PROVIDER_TIMEOUT_S)"
    )
    return [
        ProviderResult("", "retry", error_code=WITHHELD, error=error) for _ in range(recipients)
    ]
