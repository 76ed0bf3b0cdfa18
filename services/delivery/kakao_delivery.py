"""Kakao AlimTalk delivery, and the hand-over to SMS/LMS of people Kakao cannot reach."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence

from alimi import ids, states, topology
from alimi.attempts import Outcome
from alimi.messages import DeliveryBatch, Recipient
from alimi_delivery import kakao_client, metrics
from alimi_delivery.claims import Standing
from alimi_delivery.kakao_client import KakaoClient, KakaoMessage, KakaoResult
from alimi_delivery.provider_message import NoticeMessage
from alimi_delivery.service import ChannelDelivery, retrying

log = logging.getLogger("alimi.delivery")

MESSAGE_TYPE = "ALIMTALK"


class KakaoDelivery(ChannelDelivery[KakaoClient]):
    channel = "kakao"
    provider = kakao_client.PROVIDER

    async def already_handled(self, batch: DeliveryBatch, others: Sequence[Standing]) -> None:
        """Also hand over again the people this Kakao attempt handed over: the worker may
        have died between recording their fallback and publishing it."""
        await super().already_handled(batch, others)
        waiting: dict[str, list[Recipient]] = defaultdict(list)
        for s in others:
            to = (s.entry or {}).get("fallback_to")
            if s.status == states.FELL_BACK and s.recipient.fallback[:1] == (to,):
                waiting[str(to)].append(s.recipient)
        for channel, people in waiting.items():
            await self._hand_over(batch, channel, people, again=True)

    async def send(
        self, batch: DeliveryBatch, notice: NoticeMessage, claimed: list[Recipient]
    ) -> list[Outcome]:
        by_locale: dict[str, list[Recipient]] = defaultdict(list)
        for r in claimed:
            by_locale[r.locale].append(r)
        outcomes: list[Outcome] = []
        for locale, group in by_locale.items():
            for people in self.per_call(group):
                outcomes += await self._send(batch, notice, locale, people)
        return outcomes

    async def _send(
        self, batch: DeliveryBatch, notice: NoticeMessage, locale: str, people: Sequence[Recipient]
    ) -> list[Outcome]:
        """One request: ``people`` of one locale."""
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
            self.client.send(
                template_code=text.text.kakao_code,
                buttons=text.kakao_buttons(),
                messages=messages,
            ),
        )
        return [kakao_outcome(r, res) for r, res in zip(people, results, strict=True)]

    async def after_record(
        self, batch: DeliveryBatch, claimed: list[Recipient], outcomes: Sequence[Outcome]
    ) -> None:
        handed = {o.subject_id: o for o in outcomes if o.status == states.FELL_BACK}
        by_channel: dict[str, list[Recipient]] = defaultdict(list)
        for r in claimed:
            outcome = handed.get(r.subject_id)
            if outcome is not None:
                to = str(outcome.extra["fallback_to"])
                by_channel[to].append(r)
                metrics.FALLBACKS.labels(self.channel, to, outcome.reason or "").inc()
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


def kakao_outcome(recipient: Recipient, result: KakaoResult) -> Outcome:
    subject = recipient.subject_id
    if result.outcome == "sent":
        return Outcome(
            subject, states.SENT, message_id=result.message_id, message_type=MESSAGE_TYPE
        )
    if result.outcome == "uncertain":
        # The provider may have delivered it: sending an SMS too could tell the person twice.
        return Outcome(
            subject,
            states.SENT,
            message_type=MESSAGE_TYPE,
            detail=f"{result.error_code} {result.error}: delivery uncertain; no fallback",
            extra={
                "delivery_uncertain": True,
                "provider_code": result.error_code,
                "provider_message": result.error,
            },
        )
    if result.outcome == "retry":
        return retrying(result, subject, message_type=MESSAGE_TYPE)
    reason = metrics.KAKAO_FALLBACK_REASON.get(result.outcome)
    if reason is not None and recipient.fallback:
        return Outcome(
            subject,
            states.FELL_BACK,
            message_type=MESSAGE_TYPE,
            reason=reason,
            detail=f"{result.error_code} {result.error}; falling back to {recipient.fallback[0]}",
            extra={
                "fallback_from": "kakao",
                "fallback_to": recipient.fallback[0],
                "kakao_error_code": result.error_code,
                "kakao_error": result.error,
            },
        )
    return Outcome(
        subject,
        states.FAILED,
        message_type=MESSAGE_TYPE,
        error_code=result.error_code,
        error=result.error if reason is None else f"{result.error} (no fallback channel)",
    )
