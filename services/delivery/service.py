"""Delivery of one batch on one channel: claim, send, record.

:class:`ChannelDelivery` holds what every channel does with a batch: claim
each person's receipt (a person already handled is never sent to again), send
through the channel's provider, record every outcome in one bulk write, and
ask for the batch again if some people are to be retried. :class:`SmsDelivery`
and :class:`KakaoDelivery` only say how to send; Kakao also hands the people it
cannot reach to SMS/LMS.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Sequence
from typing import Any, Literal

from prometheus_client import Counter, Histogram

from alimi import ids, sms_encoding, states, topology
from alimi.bus import Bus, RetryLater, Unprocessable
from alimi.messages import DeliveryBatch, Recipient
from alimi.store import Store
from alimi_delivery import kakao_gateway, receipts, sms_gateway
from alimi_delivery.compose import NoticeMessage, message_kind
from alimi_delivery.kakao_gateway import KakaoGateway, KakaoMessage, KakaoResult
from alimi_delivery.notices import NoticeMessages
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
PROVIDER_LATENCY = Histogram(
    "alimi_provider_request_seconds",
    "Provider API call latency",
    ["provider", "kind"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)

Outcome = dict[str, Any]


class ChannelDelivery:
    channel: str
    provider: str

    def __init__(self, store: Store) -> None:
        self.store = store
        self.messages = NoticeMessages(store)

    async def handle(self, batch: DeliveryBatch, _message: Any = None) -> None:
        notice = await self.messages.get(batch.notice_id)
        if notice is None:
            raise Unprocessable(f"notice {batch.notice_id} does not exist")
        claimed = await receipts.claim(self.store, batch, self.provider)
        if len(claimed) < len(batch.recipients):
            await self.already_handled(batch, claimed)
        if not claimed:
            return
        outcomes = await self.send(batch, notice, claimed)
        await receipts.record(self.store, batch.notice_id, self.channel, outcomes)
        await self.after_record(batch, claimed, outcomes)
        retry = 0
        for o in outcomes:
            DELIVERIES.labels(self.channel, self.provider, o["status"]).inc()
            retry += o["status"] == receipts.RETRYING
        log.info(
            "batch delivered",
            extra={
                "channel": self.channel,
                "batch_id": batch.batch_id,
                "notice_id": batch.notice_id,
                "incident_id": batch.incident_id,
                "claimed": len(claimed),
                "retrying": retry,
            },
        )
        if retry:
            raise RetryLater(f"{retry} recipient(s) of {batch.batch_id} to be retried")

    async def already_handled(self, batch: DeliveryBatch, claimed: Sequence[Recipient]) -> None:
        skipped = len(batch.recipients) - len(claimed)
        DUPLICATES.labels(self.channel).inc(skipped)
        log.info(
            "recipients already handled; not sent again",
            extra={"batch_id": batch.batch_id, "notice_id": batch.notice_id, "count": skipped},
        )

    async def send(
        self, batch: DeliveryBatch, notice: NoticeMessage, claimed: list[Recipient]
    ) -> list[Outcome]:
        raise NotImplementedError

    async def after_record(
        self, batch: DeliveryBatch, claimed: list[Recipient], outcomes: list[Outcome]
    ) -> None:
        """Work that must follow the receipts' update (Kakao: hand over to SMS)."""


class SmsDelivery(ChannelDelivery):
    channel = "sms"
    provider = sms_gateway.PROVIDER

    def __init__(self, store: Store, gateway: SmsGateway) -> None:
        super().__init__(store)
        self.gateway = gateway

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
            started = time.perf_counter()
            results = await self.gateway.send(
                kind=kind, body=text.provider_body(), title=text.title, messages=messages
            )
            PROVIDER_LATENCY.labels(self.provider, kind).observe(time.perf_counter() - started)
            for r, res in zip(people, results, strict=True):
                outcome = _sms_outcome(r, res, kind)
                if not r.phone.startswith(KOREA):
                    # International routes bill by GSM-7 / UCS-2 segments, not EUC-KR bytes.
                    parts = sms_encoding.segments(text.text_for(r.name))
                    outcome["fields"] = {"encoding": parts.encoding, "segments": parts.count}
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
    }


class KakaoDelivery(ChannelDelivery):
    channel = "kakao"
    provider = kakao_gateway.PROVIDER

    def __init__(self, store: Store, gateway: KakaoGateway, bus: Bus) -> None:
        super().__init__(store)
        self.gateway = gateway
        self.bus = bus

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
            started = time.perf_counter()
            results = await self.gateway.send(
                template_code=text.text.kakao_code,
                buttons=text.kakao_buttons(),
                messages=messages,
            )
            PROVIDER_LATENCY.labels(self.provider, "alimtalk").observe(
                time.perf_counter() - started
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
