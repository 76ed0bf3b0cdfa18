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
from alimi_delivery.claims import Claimant, Standing
from alimi_delivery.guard import ProviderGuard
from alimi_delivery.heartbeat import Heartbeat
from alimi_delivery.notice_cache import NoticeMessages
from alimi_delivery.provider_client import ProviderClient, ProviderResult, call_failed
from alimi_delivery.provider_message import NoticeMessage
from alimi_delivery.retries import Retries, RetryPolicy
from alimi_delivery.vouching import Vouching, withheld

log = logging.getLogger("alimi.delivery")

HALTED_DETAIL = "the notice was halted before this person was reached"
ABANDONED_KEPT = 10_000  # attempt ids remembered as abandoned, the oldest forgotten first
STATUS_QUERIES_IN_FLIGHT = 16
HEARTBEAT_S = 2.0  # how often a worker beats, unless it is given its heartbeat


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
        heartbeat: Heartbeat | None = None,
    ) -> None:
        self.store = store
        self.bus = bus
        self.client = client
        self.guard = guard
        self.retries = Retries(bus, self.channel, retry)
        self.claim_lease_s = claim_lease_s
        self.heartbeat = heartbeat or Heartbeat(
            store, f"delivery-{self.channel}", every_s=HEARTBEAT_S, call_s=client.timeout_s
        )
        # People held by a live worker's claim are looked at again this often: soon after
        # that worker's heartbeat could have run out, never later than the lease.
        self.hold_s = min(claim_lease_s, self.heartbeat.ttl_s / 2)
        self.vouching = Vouching(self.heartbeat, lease_s=claim_lease_s)
        self.messages = NoticeMessages(store)
        self.shards = shards or Shards.for_process(f"delivery-{self.channel}", slots=8)
        # Attempts of this process that ended without their record (the database failed
        # mid-way, say): their claims have no owner, and need not wait out the lease.
        self.abandoned: dict[str, None] = {}
        metrics.declare(self.channel, self.provider)

    async def handle(self, batch: DeliveryBatch, _message: Any = None) -> None:
        notice = await self.messages.get(batch.notice_id)
        if notice is None:
            raise Unprocessable(f"notice {batch.notice_id} does not exist")
        attempt_id = ids.attempt_id(batch.batch_id)
        try:
            await self._attempt(batch, notice, attempt_id)
        except BaseException:
            # Its claims are orphans now: a redelivery here settles them at once, and
            # one elsewhere once the next heartbeat names the attempt.
            self.abandoned[attempt_id] = None
            self.heartbeat.abandon(attempt_id)
            while len(self.abandoned) > ABANDONED_KEPT:
                del self.abandoned[next(iter(self.abandoned))]
            raise

    async def _attempt(self, batch: DeliveryBatch, notice: NoticeMessage, attempt_id: str) -> None:
        claimed = self.vouching.begin()
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
        owned = claim.owned
        async with self.shards.take() as shard:
            if self.vouching.may_record(claimed):
                await claims.record(self.store, doc, shard=shard)
            else:
                held = await claims.record_if_held(self.store, doc, shard=shard)
                owned = [r for r in owned if r.subject_id in held]
                outcomes = [o for o in outcomes if o.subject_id in held]
        await self.after_record(batch, owned, outcomes)
        await self._follow_up(batch, owned, outcomes)
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
        """Make ``request`` within the rate limit; feed its result to the breaker.

        The call is made only if it will end (at the provider's timeout) while this
        worker's heartbeat and the attempt's claim still vouch for it; otherwise
        nobody in it is sent to now (:meth:`withheld`)."""
        try:
            await self.guard.throttle(recipients)
            vouched = await self.vouching.may_call()
        except BaseException:
            request.close()  # never started
            raise
        if not vouched:
            request.close()
            return withheld(self.channel, recipients)
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
        if not await self.heartbeat.confirmed():
            # A claim naming a worker that never beat would be taken over at once.
            raise RetryLater("this worker's heartbeat could not be written")
        now = _now()
        by = Claimant(attempt_id, self.provider, self.heartbeat.owner)
        collided = await claims.claim_new(self.store, batch, by=by, now=now)
        if not collided:
            return Claim(list(batch.recipients))
        found = await claims.standings(self.store, batch.notice_id, collided)
        holders = await self.heartbeat.holders(
            s.worker for s in found if s.worker and s.worker != self.heartbeat.owner
        )
        doubtful = [
            s
            for s in found
            if s.in_doubt
            or s.stale(now - timedelta(seconds=self.claim_lease_s))
            or (s.status == states.CLAIMED and s.attempt_id in self.abandoned)
            or (s.worker is not None and s.worker in holders.gone)
            or (s.worker is not None and s.attempt_id in holders.abandoned)
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
                    self.store, batch, claimable, by=by, now=now, shard=shard
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

        A claim of a live worker (its heartbeat vouches for it) may still be
        recorded; the worker may also die in the next moment (the broker then
        redelivers its batch here at once). Those people are parked in a
        retry queue for a few seconds (``hold_s``, half a heartbeat's span)
        and looked at again: by then they are final, or still held, or their
        worker is gone and the provider is asked and they are settled. People this very batch gave
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
        await self.retries.park(batch, held, self.hold_s)
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
