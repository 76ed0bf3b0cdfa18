"""Delivery of one batch on one channel: claim, send, record.

:class:`ChannelDelivery` holds what every channel does with a batch: claim
each person's receipt (a person already handled is never sent to again), send
through the channel's provider within its rate limit and circuit breaker,
record every outcome in one bulk write, and publish only the people to be
retried to the retry queue of the next step (after the last step: the
dead-letter queue, receipts ``failed``). Before anyone is sent to again after
an attempt that may have reached the provider (a timeout, a worker that died
holding a claim), the provider is asked by the receipt id.
:class:`SmsDelivery` and :class:`KakaoDelivery` only say how to send; Kakao
also hands the people it cannot reach to SMS/LMS.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import time
from collections import defaultdict
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import aiohttp
from prometheus_client import Counter, Histogram

from alimi import ids, sms_encoding, states, topology
from alimi.bus import ERROR_HEADER, Bus, RetryLater, Unprocessable
from alimi.messages import Channel, DeliveryBatch, Recipient
from alimi.store import Store
from alimi_delivery import kakao_gateway, receipts, sms_gateway
from alimi_delivery.compose import NoticeMessage, message_kind
from alimi_delivery.guard import ProviderGuard
from alimi_delivery.kakao_gateway import KakaoGateway, KakaoMessage, KakaoResult
from alimi_delivery.notices import NoticeMessages
from alimi_delivery.provider_result import ProviderResult, call_failed
from alimi_delivery.sms_gateway import SmsGateway, SmsMessage, SmsResult

log = logging.getLogger("alimi.delivery")

DELIVERIES = Counter(
    "alimi_deliveries_total", "Recipients handled, by outcome", ["channel", "provider", "outcome"]
)
DUPLICATES = Counter(
    "alimi_delivery_duplicates_skipped_total",
    "Recipients skipped because their receipt was already claimed or final",
    ["channel"],
)
FALLBACKS = Counter(
    "alimi_delivery_fallbacks_total",
    "People handed from one channel to the next in their chain",
    ["from_channel", "to_channel", "reason"],
)
RETRIED = Counter(
    "alimi_delivery_retries_total",
    "Recipients sent to a retry queue, by channel and step",
    ["channel", "step"],
)
DEAD_LETTERED = Counter(
    "alimi_delivery_dead_lettered_total",
    "Recipients dead-lettered after the last retry (their receipts failed)",
    ["channel"],
)
HALTED = Counter(
    "alimi_delivery_halted_total",
    "Recipients not sent to because their notice was halted",
    ["channel"],
)
IN_DOUBT = Counter(
    "alimi_delivery_in_doubt_total",
    "Receipts whose last attempt may have reached the provider, by what it said",
    ["channel", "answer"],
)
APPROVAL_TO_ACCEPT = Histogram(
    "alimi_delivery_approval_to_accept_seconds",
    "From a notice's approval to the provider accepting one person's message",
    ["channel"],
    buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400),
)
PROVIDER_LATENCY = Histogram(
    "alimi_provider_request_seconds",
    "Provider API call latency",
    ["provider", "kind"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)

Outcome = dict[str, Any]


@dataclass(frozen=True)
class RetryPolicy:
    """Delays of the retry steps (then the dead-letter queue), with jitter."""

    delays_s: tuple[float, ...] = (5.0, 30.0, 300.0)
    jitter: float = 0.2

    def delay(self, step: int, retry_after_s: float | None = None) -> float:
        base = self.delays_s[step - 1] * random.uniform(1 - self.jitter, 1 + self.jitter)
        return max(base, retry_after_s or 0.0)

    def step_outlasting(self, seconds: float) -> int:
        """The first step whose delay is at least ``seconds`` (else the last)."""
        for step, delay in enumerate(self.delays_s, start=1):
            if delay >= seconds:
                return step
        return len(self.delays_s)


def declare_metrics(channel: str, provider: str) -> None:
    """Create a channel's series at zero, so the first failure after a start shows in rates."""
    for status in (states.SENT, states.FAILED, receipts.RETRYING, states.FELL_BACK, states.HALTED):
        DELIVERIES.labels(channel, provider, status)
    DUPLICATES.labels(channel)
    DEAD_LETTERED.labels(channel)
    HALTED.labels(channel)
    for step in range(1, topology.RETRY_STEPS + 1):
        RETRIED.labels(channel, str(step))
    if channel == "kakao":
        for reason in KAKAO_FALLBACK_REASON.values():
            FALLBACKS.labels("kakao", "sms", reason)


class ChannelDelivery:
    channel: Channel
    provider: str

    def __init__(
        self,
        store: Store,
        bus: Bus,
        guard: ProviderGuard,
        *,
        retry: RetryPolicy,
        claim_lease_s: float,
    ) -> None:
        self.store = store
        self.bus = bus
        self.guard = guard
        self.retry = retry
        self.claim_lease_s = claim_lease_s
        self.messages = NoticeMessages(store)
        declare_metrics(self.channel, self.provider)

    async def handle(self, batch: DeliveryBatch, _message: Any = None) -> None:
        notice = await self.messages.get(batch.notice_id)
        if notice is None:
            raise Unprocessable(f"notice {batch.notice_id} does not exist")
        claimed = await self.claim(batch)
        if len(claimed) < len(batch.recipients):
            await self.already_handled(batch, claimed)
        if not claimed:
            return
        if await self.messages.halted(batch.notice_id):
            await receipts.record(
                self.store, batch.notice_id, self.channel, [_halted(r) for r in claimed]
            )
            HALTED.labels(self.channel).inc(len(claimed))
            log.info(
                "notice halted; batch not sent",
                extra={"batch_id": batch.batch_id, "notice_id": batch.notice_id},
            )
            return
        if self.guard.allow():
            outcomes = await self.send(batch, notice, claimed)
        else:
            outcomes = [_breaker_open(r) for r in claimed]
        await receipts.record(self.store, batch.notice_id, self.channel, outcomes)
        await self.after_record(batch, claimed, outcomes)
        retrying = [o for o in outcomes if o["status"] == receipts.RETRYING]
        if retrying:
            await self.retry_later(batch, claimed, retrying)
        accepted = datetime.now(UTC)
        for o in outcomes:
            DELIVERIES.labels(self.channel, self.provider, o["status"]).inc()
            if o["status"] == states.SENT and notice.approved_at is not None:
                APPROVAL_TO_ACCEPT.labels(self.channel).observe(
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
                "claimed": len(claimed),
                "retrying": len(retrying),
            },
        )

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
        PROVIDER_LATENCY.labels(self.provider, kind).observe(time.perf_counter() - started)
        waits = [r.retry_after_s for r in results if r.retry_after_s is not None]
        self.guard.observe(
            call_failed=call_failed(results), retry_after_s=max(waits) if waits else None
        )
        return results

    async def claim(self, batch: DeliveryBatch) -> list[Recipient]:
        """The people of the batch this worker now owns, in the batch's order.

        The new ones are claimed with one insert; only for those who already
        had a receipt is the provider asked about attempts in doubt, before
        their receipts are claimed if they still may be.
        """
        existing = await receipts.claim_new(self.store, batch, self.provider)
        if not existing:
            return list(batch.recipients)
        stale = receipts.stale_before(self.claim_lease_s)
        await self.settle_in_doubt(batch, existing, stale)
        taken = await receipts.claim_existing(
            self.store, batch, existing, self.provider, stale=stale
        )
        lost = {r.subject_id for r in existing} - {r.subject_id for r in taken}
        return [r for r in batch.recipients if r.subject_id not in lost]

    async def settle_in_doubt(
        self, batch: DeliveryBatch, people: Sequence[Recipient], stale: datetime
    ) -> None:
        """Ask the provider about ``people``'s receipts whose last attempt may have reached
        it, claims made before ``stale`` among them."""
        doubtful = await receipts.in_doubt(self.store, batch.notice_id, people, stale)
        if not doubtful:
            return
        limit = asyncio.Semaphore(16)

        async def ask(receipt_id: str) -> tuple[str, str | None]:
            async with limit:
                return receipt_id, await self.find(receipt_id)

        try:
            answers = await asyncio.gather(*(ask(rid) for rid in doubtful))
        except (aiohttp.ClientError, TimeoutError) as exc:
            # Sending without knowing could tell someone twice: try the batch later.
            raise RetryLater(f"status query failed: {type(exc).__name__}: {exc}") from None
        found = {rid: message_id for rid, message_id in answers if message_id}
        await receipts.found_at_provider(self.store, batch.notice_id, self.channel, found)
        IN_DOUBT.labels(self.channel, "found").inc(len(found))
        IN_DOUBT.labels(self.channel, "not_found").inc(len(doubtful) - len(found))
        log.info(
            "asked the provider about receipts in doubt",
            extra={
                "batch_id": batch.batch_id,
                "notice_id": batch.notice_id,
                "in_doubt": len(doubtful),
                "found": len(found),
            },
        )

    async def find(self, receipt_id: str) -> str | None:
        """The provider's message id for a message sent with ``receipt_id``, if any."""
        raise NotImplementedError

    async def retry_later(
        self, batch: DeliveryBatch, claimed: list[Recipient], retrying: list[Outcome]
    ) -> None:
        """Send only the retrying people again after the step's delay, or dead-letter them."""
        ids_ = {o["subject_id"] for o in retrying}
        people = tuple(r for r in claimed if r.subject_id in ids_)
        step = batch.attempt
        root = RETRY_SUFFIX.sub("", batch.batch_id)
        last_error = "; ".join(
            sorted({f"{o.get('error_code')} {o.get('error') or ''}".strip() for o in retrying})
        )
        if step > len(self.retry.delays_s):
            dead = batch.model_copy(update={"recipients": people})
            await self.bus.publish(
                topology.DEAD,
                topology.delivery_queue(self.channel),
                dead.to_bytes(),
                message_id=dead.batch_id,
                headers={ERROR_HEADER: f"gave up after {step} attempts: {last_error}"[:1000]},
            )
            await receipts.dead_lettered(
                self.store,
                batch.notice_id,
                self.channel,
                [r.subject_id for r in people],
                f"gave up after {step} attempts: {last_error}",
            )
            DEAD_LETTERED.labels(self.channel).inc(len(people))
            log.error(
                "recipients dead-lettered after the last retry",
                extra={"batch_id": batch.batch_id, "count": len(people), "error": last_error},
            )
            return
        again = batch.model_copy(
            update={
                "batch_id": f"{root}:a{step + 1}",
                "attempt": step + 1,
                "recipients": people,
            }
        )
        waits = [o["retry_after_s"] for o in retrying if o.get("retry_after_s")]
        delay = self.retry.delay(step, max(waits) if waits else None)
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
                "error": last_error,
            },
        )

    async def already_handled(self, batch: DeliveryBatch, claimed: Sequence[Recipient]) -> None:
        """People this worker could not claim: final (done), or held by another claim.

        A claim that is not stale may belong to a worker that just died (the
        broker redelivered its batch at once). Those people are parked in a
        retry queue until the claim's lease is over; then the provider is asked
        and they are settled either way. If the claim's worker is alive, they
        are final by then and nothing more happens.
        """
        owned = {r.subject_id for r in claimed}
        others = [r for r in batch.recipients if r.subject_id not in owned]
        held = await receipts.held(self.store, batch.notice_id, [r.subject_id for r in others])
        DUPLICATES.labels(self.channel).inc(len(others) - len(held))
        log.info(
            "recipients already handled; not sent again",
            extra={
                "batch_id": batch.batch_id,
                "notice_id": batch.notice_id,
                "count": len(others) - len(held),
                "held_by_a_claim": len(held),
            },
        )
        if held:
            parked = batch.model_copy(
                update={
                    "batch_id": f"{RETRY_SUFFIX.sub('', batch.batch_id)}:held",
                    "recipients": tuple(r for r in others if r.subject_id in held),
                }
            )
            step = self.retry.step_outlasting(self.claim_lease_s)
            await self.bus.publish(
                topology.RETRY,
                topology.retry_key(self.channel, step),
                parked.to_bytes(),
                message_id=parked.batch_id,
                expiration_s=max(self.retry.delays_s[step - 1], self.claim_lease_s),
            )

    async def send(
        self, batch: DeliveryBatch, notice: NoticeMessage, claimed: list[Recipient]
    ) -> list[Outcome]:
        raise NotImplementedError

    async def after_record(
        self, batch: DeliveryBatch, claimed: list[Recipient], outcomes: list[Outcome]
    ) -> None:
        """Work that must follow the receipts' update (Kakao: hand over to SMS)."""


RETRY_SUFFIX = re.compile(r":a\d+$")


def _halted(recipient: Recipient) -> Outcome:
    return {
        "subject_id": recipient.subject_id,
        "status": states.HALTED,
        "detail": "the notice was halted before this person was reached",
    }


def _breaker_open(recipient: Recipient) -> Outcome:
    return {
        "subject_id": recipient.subject_id,
        "status": receipts.RETRYING,
        "error_code": "breaker_open",
        "error": "the provider's circuit breaker is open",
    }


def _retry_fields(result: ProviderResult[Any]) -> dict[str, Any]:
    """What a retrying outcome carries besides its error."""
    fields: dict[str, Any] = {}
    if result.in_doubt:
        fields["fields"] = {"in_doubt": True}
    if result.retry_after_s is not None:
        fields["retry_after_s"] = result.retry_after_s
    return fields


class SmsDelivery(ChannelDelivery):
    channel = "sms"
    provider = sms_gateway.PROVIDER

    def __init__(self, store: Store, bus: Bus, gateway: SmsGateway, **kw: Any) -> None:
        super().__init__(store, bus, kw.pop("guard"), **kw)
        self.gateway = gateway

    async def find(self, receipt_id: str) -> str | None:
        return await self.gateway.find(receipt_id)

    async def send(
        self, batch: DeliveryBatch, notice: NoticeMessage, claimed: list[Recipient]
    ) -> list[Outcome]:
        # One request per (locale, SMS or LMS): the text is shared, the name is a parameter.
        groups: dict[tuple[str, Literal["SMS", "LMS"]], list[Recipient]] = defaultdict(list)
        for r in claimed:
            text = notice.for_locale(r.locale)
            groups[(r.locale, message_kind(text.text_for(r.name)))].append(r)
        outcomes: list[Outcome] = []
        for (locale, kind), people in groups.items():
            text = notice.for_locale(locale)
            messages = [
                SmsMessage(
                    ids.receipt_id(batch.notice_id, r.subject_id),
                    r.phone,
                    text.sms_parameters(r.name),
                )
                for r in people
            ]
            results = await self.call(
                kind,
                len(messages),
                self.gateway.send(
                    kind=kind, body=text.provider_body(), title=text.title, messages=messages
                ),
            )
            for r, res in zip(people, results, strict=True):
                outcome = _sms_outcome(r, res, kind)
                if not r.phone.startswith(KOREA):
                    # International routes bill by GSM-7 / UCS-2 segments, not EUC-KR bytes.
                    parts = sms_encoding.segments(text.text_for(r.name))
                    outcome.setdefault("fields", {}).update(
                        {"encoding": parts.encoding, "segments": parts.count}
                    )
                outcomes.append(outcome)
        return outcomes


KOREA = "+82"
SMS_STATUS = {"sent": states.SENT, "permanent": states.FAILED, "retry": receipts.RETRYING}


def _sms_outcome(recipient: Recipient, result: SmsResult, kind: str) -> Outcome:
    return {
        "subject_id": recipient.subject_id,
        "status": SMS_STATUS[result.outcome],
        "message_id": result.message_id,
        "error_code": result.error_code,
        "error": result.error,
        "message_type": kind,
        **_retry_fields(result),
    }


class KakaoDelivery(ChannelDelivery):
    channel = "kakao"
    provider = kakao_gateway.PROVIDER

    def __init__(self, store: Store, bus: Bus, gateway: KakaoGateway, **kw: Any) -> None:
        super().__init__(store, bus, kw.pop("guard"), **kw)
        self.gateway = gateway

    async def find(self, receipt_id: str) -> str | None:
        return await self.gateway.find(receipt_id)

    async def already_handled(self, batch: DeliveryBatch, claimed: Sequence[Recipient]) -> None:
        await super().already_handled(batch, claimed)
        owned = {r.subject_id for r in claimed}
        others = [r for r in batch.recipients if r.subject_id not in owned]
        for channel in {c for r in others for c in r.fallback[:1]}:
            waiting = await receipts.handed_over(
                self.store,
                batch.notice_id,
                (r for r in others if r.fallback[:1] == (channel,)),
                channel,
            )
            await self._hand_over(batch, channel, waiting, again=True)

    async def send(
        self, batch: DeliveryBatch, notice: NoticeMessage, claimed: list[Recipient]
    ) -> list[Outcome]:
        by_locale: dict[str, list[Recipient]] = defaultdict(list)
        for r in claimed:
            by_locale[r.locale].append(r)
        outcomes: list[Outcome] = []
        for locale, people in by_locale.items():
            text = notice.for_locale(locale)
            messages = [
                KakaoMessage(
                    ids.receipt_id(batch.notice_id, r.subject_id),
                    r.phone,
                    text.kakao_parameters(r.name),
                )
                for r in people
            ]
            results = await self.call(
                "alimtalk",
                len(messages),
                self.gateway.send(
                    template_code=text.text.kakao_code,
                    buttons=text.kakao_buttons(),
                    messages=messages,
                ),
            )
            outcomes.extend(_kakao_outcome(r, res) for r, res in zip(people, results, strict=True))
        return outcomes

    async def after_record(
        self, batch: DeliveryBatch, claimed: list[Recipient], outcomes: list[Outcome]
    ) -> None:
        handed = {o["subject_id"]: o for o in outcomes if o["status"] == states.FELL_BACK}
        by_channel: dict[str, list[Recipient]] = defaultdict(list)
        for r in claimed:
            outcome = handed.get(r.subject_id)
            if outcome is not None:
                by_channel[outcome["fields"]["fallback_to"]].append(r)
                FALLBACKS.labels(
                    self.channel, outcome["fields"]["fallback_to"], outcome["reason"]
                ).inc()
        for channel, people in by_channel.items():
            await self._hand_over(batch, channel, people, again=False)

    async def _hand_over(
        self, batch: DeliveryBatch, channel: str, people: list[Recipient], *, again: bool
    ) -> None:
        """Publish ``people`` as one batch of their fallback channel."""
        if not people:
            return
        handed = DeliveryBatch(
            batch_id=f"{batch.batch_id}:to-{channel}",
            notice_id=batch.notice_id,
            incident_id=batch.incident_id,
            channel=channel,  # type: ignore[arg-type]
            recipients=tuple(r.model_copy(update={"fallback": r.fallback[1:]}) for r in people),
        )
        await self.bus.publish(
            topology.DELIVERY, channel, handed.to_bytes(), message_id=handed.batch_id
        )
        log.info(
            "handed over to the fallback channel",
            extra={
                "batch_id": handed.batch_id,
                "notice_id": batch.notice_id,
                "channel": channel,
                "count": len(people),
                "again": again,
            },
        )


KAKAO_FALLBACK_REASON = {"unreachable": "not_reachable", "rejected": "kakao_rejected"}


def _kakao_outcome(recipient: Recipient, result: KakaoResult) -> Outcome:
    base: Outcome = {"subject_id": recipient.subject_id, "message_type": "ALIMTALK"}
    if result.outcome == "sent":
        return {**base, "status": states.SENT, "message_id": result.message_id}
    if result.outcome == "uncertain":
        # The provider may have delivered it: sending an SMS too could tell the person twice.
        return {
            **base,
            "status": states.SENT,
            "detail": f"{result.error_code} {result.error}: delivery uncertain; no fallback",
            "fields": {
                "delivery_uncertain": True,
                "provider_code": result.error_code,
                "provider_message": result.error,
            },
        }
    if result.outcome == "retry":
        return {
            **base,
            "status": receipts.RETRYING,
            "error_code": result.error_code,
            "error": result.error,
            **_retry_fields(result),
        }
    reason = KAKAO_FALLBACK_REASON.get(result.outcome)
    if reason is not None and recipient.fallback:
        return {
            **base,
            "status": states.FELL_BACK,
            "reason": reason,
            "detail": f"{result.error_code} {result.error}; "
            f"falling back to {recipient.fallback[0]}",
            "fields": {
                "fallback_from": "kakao",
                "fallback_to": recipient.fallback[0],
                "fallback_reason": reason,
                "kakao_error_code": result.error_code,
                "kakao_error": result.error,
            },
        }
    return {
        **base,
        "status": states.FAILED,
        "error_code": result.error_code,
        "error": result.error if reason is None else f"{result.error} (no fallback channel)",
    }
