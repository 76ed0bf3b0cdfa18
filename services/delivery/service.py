"""Delivery of one batch on one channel: claim, send, record, then retry or hand over.

:class:`ChannelDelivery` holds what every channel does with a batch, as one
*attempt*: claim each person's receipt (:mod:`claims`: a person already
handled is never sent to again; someone whose earlier attempt may have reached
the provider is looked up there first), send through the channel's provider
within its rate limit and circuit breaker, write the outcomes as one attempt
document with the counts they change, and only then publish what follows:
the people to retry (:mod:`retries`), the dead letters, and (Kakao) the people
handed to their next channel. A crash between the write and the publishing is
repaired by the batch's redelivery, which finds those people as the attempt
left them. :class:`~alimi_delivery.sms_delivery.SmsDelivery` and
:class:`~alimi_delivery.kakao_delivery.KakaoDelivery` only say how to send.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, TypeVar

import aiohttp

from alimi import attempts, ids, states
from alimi.attempts import Outcome
from alimi.bus import Bus, RetryLater, Unprocessable
from alimi.counters import Shards
from alimi.messages import Channel, DeliveryBatch, Recipient
from alimi.store import Store
from alimi_delivery import claims, metrics
from alimi_delivery.claims import Standing
from alimi_delivery.guard import ProviderGuard
from alimi_delivery.notice_cache import NoticeMessages
from alimi_delivery.provider_client import ProviderClient, ProviderResult, call_failed
from alimi_delivery.provider_message import NoticeMessage
from alimi_delivery.retries import Retries, RetryPolicy

log = logging.getLogger("alimi.delivery")

HALTED_DETAIL = "the notice was halted before this person was reached"
STATUS_QUERIES_IN_FLIGHT = 16


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Claim:
    """The people of a batch this attempt owns, and where the others stand."""

    owned: list[Recipient]
    others: list[Standing] = field(default_factory=list)  # final, held, handed over
    settled: int = 0  # found at the provider: recorded sent, not sent again


ClientT = TypeVar("ClientT", bound=ProviderClient[Any])
R = TypeVar("R")


class ChannelDelivery(Generic[ClientT]):
    channel: Channel
    provider: str

    def __init__(
        self,
        store: Store,
        bus: Bus,
        client: ClientT,
        *,
        guard: ProviderGuard,
        retry: RetryPolicy,
        claim_lease_s: float,
        shards: Shards | None = None,
    ) -> None:
        self.store = store
        self.bus = bus
        self.client = client
        self.guard = guard
        self.retries = Retries(bus, self.channel, retry)
        self.claim_lease_s = claim_lease_s
        self.messages = NoticeMessages(store)
        self.shards = shards or Shards.for_process(f"delivery-{self.channel}", slots=8)
        metrics.declare(self.channel, self.provider)

    async def handle(self, batch: DeliveryBatch, _message: Any = None) -> None:
        notice = await self.messages.get(batch.notice_id)
        if notice is None:
            raise Unprocessable(f"notice {batch.notice_id} does not exist")
        attempt_id = ids.attempt_id(batch.batch_id)
        claim = await self.claim(batch, attempt_id)
        if claim.others:
            await self.already_handled(batch, claim.others)
        if not claim.owned:
            return
        if await self.messages.halted(batch.notice_id):
            kind = attempts.HALT
            outcomes = [
                Outcome(r.subject_id, states.HALTED, detail=HALTED_DETAIL) for r in claim.owned
            ]
            metrics.HALTED.labels(self.channel).inc(len(outcomes))
            log.info(
                "notice halted; batch not sent",
                extra={"batch_id": batch.batch_id, "notice_id": batch.notice_id},
            )
        else:
            kind = attempts.SEND
            with self.guard.calling() as allowed:
                outcomes = (
                    await self.send(batch, notice, claim.owned)
                    if allowed
                    else [_breaker_open(r) for r in claim.owned]
                )
        outcomes = self.retries.give_up(batch, outcomes)
        doc = attempts.document(
            attempt_id,
            kind=kind,
            notice_id=batch.notice_id,
            incident_id=batch.incident_id,
            channel=self.channel,
            provider=self.provider,
            batch_id=batch.batch_id,
            attempt=batch.attempt,
            at=_now(),
            outcomes=outcomes,
        )
        async with self.shards.take() as shard:
            await claims.record(self.store, doc, shard=shard)
        await self.after_record(batch, claim.owned, outcomes)
        await self._follow_up(batch, claim.owned, outcomes)
        self._observe(batch, notice, outcomes, claim)

    async def _follow_up(
        self, batch: DeliveryBatch, owned: Sequence[Recipient], outcomes: Sequence[Outcome]
    ) -> None:
        """Publish the people to retry and the dead letters, once their attempt is written."""
        by_subject = {r.subject_id: r for r in owned}
        retrying = [o for o in outcomes if o.status == states.RETRYING]
        await self.retries.retry(batch, [by_subject[o.subject_id] for o in retrying], retrying)
        dead = [o for o in outcomes if o.dead_lettered]
        if dead:
            await self.retries.dead_letter(
                batch, [by_subject[o.subject_id] for o in dead], dead[0].error or "gave up"
            )

    def _observe(
        self,
        batch: DeliveryBatch,
        notice: NoticeMessage,
        outcomes: Sequence[Outcome],
        claim: Claim,
    ) -> None:
        accepted = _now()
        for o in outcomes:
            metrics.DELIVERIES.labels(self.channel, self.provider, o.status).inc()
            if o.status == states.SENT and notice.approved_at is not None:
                metrics.APPROVAL_TO_ACCEPT.labels(self.channel).observe(
                    (accepted - notice.approved_at).total_seconds()
                )
        log.info(
            "batch delivered",
            extra={
                "channel": self.channel,
                "batch_id": batch.batch_id,
                "notice_id": batch.notice_id,
                "incident_id": batch.incident_id,
                "attempt": batch.attempt,
                "claimed": len(claim.owned),
                "retrying": sum(1 for o in outcomes if o.status == states.RETRYING),
            },
        )

    def per_call(self, people: Sequence[R]) -> list[Sequence[R]]:
        """``people`` in the calls they go out in: none carries more recipients than the
        provider takes in a second (the rate limit), so waiting for the bucket keeps every
        second within it."""
        most = self.guard.most_per_call or len(people) or 1
        return [people[i : i + most] for i in range(0, len(people), most)]

    async def call(
        self, kind: str, recipients: int, request: Coroutine[Any, Any, list[ProviderResult[Any]]]
    ) -> list[ProviderResult[Any]]:
        """Make ``request`` within the rate limit; feed its result to the breaker."""
        try:
            await self.guard.throttle(recipients)
        except BaseException:
            request.close()  # never started
            raise
        started = time.perf_counter()
        results = await request
        metrics.PROVIDER_LATENCY.labels(self.provider, kind).observe(time.perf_counter() - started)
        waits = [r.retry_after_s for r in results if r.retry_after_s is not None]
        self.guard.observe(
            call_failed=call_failed(results), retry_after_s=max(waits) if waits else None
        )
        return results

    async def claim(self, batch: DeliveryBatch, attempt_id: str) -> Claim:
        """Claim the batch's people for ``attempt_id``: the new ones with one insert; only
        those who already had a receipt are read, and the provider asked about any whose
        earlier attempt may have reached it."""
        now = _now()
        collided = await claims.claim_new(
            self.store, batch, attempt_id=attempt_id, provider=self.provider, now=now
        )
        if not collided:
            return Claim(list(batch.recipients))
        found = await claims.standings(self.store, batch.notice_id, collided)
        doubtful = [
            s for s in found if s.in_doubt or s.stale(now - timedelta(seconds=self.claim_lease_s))
        ]
        settled = await self.settle_in_doubt(batch, doubtful, now) if doubtful else set()
        asked = {s.subject_id for s in doubtful}
        claimable = [
            s
            for s in found
            if s.subject_id not in settled
            and (s.subject_id in asked or s.claimable_by(self.channel))
        ]
        won: set[str] = set()
        if claimable:
            async with self.shards.take() as shard:
                won = await claims.take_over(
                    self.store,
                    batch,
                    claimable,
                    attempt_id=attempt_id,
                    provider=self.provider,
                    now=now,
                    shard=shard,
                )
        had = {r.subject_id for r in collided}
        return Claim(
            owned=[r for r in batch.recipients if r.subject_id not in had or r.subject_id in won],
            others=[s for s in found if s.subject_id not in won and s.subject_id not in settled],
            settled=len(settled),
        )

    async def settle_in_doubt(
        self, batch: DeliveryBatch, people: Sequence[Standing], now: datetime
    ) -> set[str]:
        """Ask the provider about ``people``'s attempts in doubt; record those it has as
        ``sent``. The subject ids it had."""
        limit = asyncio.Semaphore(STATUS_QUERIES_IN_FLIGHT)

        async def ask(standing: Standing) -> tuple[Standing, str | None]:
            async with limit:
                key = ids.receipt_id(batch.notice_id, standing.subject_id)
                return standing, await self.client.find(key)

        try:
            answers = await asyncio.gather(*(ask(s) for s in people))
        except (aiohttp.ClientError, TimeoutError) as exc:
            # Sending without knowing could tell someone twice: try the batch later.
            raise RetryLater(f"status query failed: {type(exc).__name__}: {exc}") from None
        found = [(s, message_id) for s, message_id in answers if message_id]
        if found:
            async with self.shards.take() as shard:
                await claims.settle(
                    self.store, batch, found, provider=self.provider, now=now, shard=shard
                )
        metrics.IN_DOUBT.labels(self.channel, "found").inc(len(found))
        metrics.IN_DOUBT.labels(self.channel, "not_found").inc(len(people) - len(found))
        log.info(
            "asked the provider about receipts in doubt",
            extra={
                "batch_id": batch.batch_id,
                "notice_id": batch.notice_id,
                "in_doubt": len(people),
                "found": len(found),
            },
        )
        return {s.subject_id for s, _ in found}

    async def already_handled(self, batch: DeliveryBatch, others: Sequence[Standing]) -> None:
        """People this attempt could not claim: final (done), or held by another claim.

        A claim that is not stale may belong to a worker that just died (the
        broker redelivered its batch at once). Those people are parked in a
        retry queue until the claim's lease is over; then the provider is asked
        and they are settled either way. If the claim's worker is alive, they
        are final by then and nothing more happens. People this very batch gave
        up on are dead-lettered again, in case the first publish was lost.
        """
        held = [s.recipient for s in others if s.status == states.CLAIMED]
        metrics.DUPLICATES.labels(self.channel).inc(len(others) - len(held))
        log.info(
            "recipients already handled; not sent again",
            extra={
                "batch_id": batch.batch_id,
                "notice_id": batch.notice_id,
                "count": len(others) - len(held),
                "held_by_a_claim": len(held),
            },
        )
        await self.retries.park(batch, held, self.claim_lease_s)
        dead = [s for s in others if s.dead_lettered_by(batch.batch_id)]
        if dead:
            await self.retries.dead_letter(
                batch, [s.recipient for s in dead], str((dead[0].entry or {}).get("error") or "")
            )

    async def send(
        self, batch: DeliveryBatch, notice: NoticeMessage, claimed: list[Recipient]
    ) -> list[Outcome]:
        raise NotImplementedError

    async def after_record(
        self, batch: DeliveryBatch, claimed: list[Recipient], outcomes: Sequence[Outcome]
    ) -> None:
        """Work that must follow the attempt's record (Kakao: hand over to SMS)."""


def _breaker_open(recipient: Recipient) -> Outcome:
    return Outcome(
        recipient.subject_id,
        states.RETRYING,
        error_code="breaker_open",
        error="the provider's circuit breaker is open",
    )


def retrying(key_result: ProviderResult[Any], subject_id: str, **known: Any) -> Outcome:
    """The ``retrying`` outcome of a provider result (in doubt, Retry-After kept)."""
    return Outcome(
        subject_id,
        states.RETRYING,
        error_code=key_result.error_code,
        error=key_result.error,
        in_doubt=key_result.in_doubt,
        retry_after_s=key_result.retry_after_s,
        **known,
    )
