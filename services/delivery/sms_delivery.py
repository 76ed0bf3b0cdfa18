"""SMS / LMS delivery: one request per (locale, SMS or LMS) of a batch, split so that no
request carries more people than the provider takes in a second."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from alimi import ids, sms_encoding, sms_kind, states
from alimi.attempts import Outcome
from alimi.messages import DeliveryBatch, Recipient
from alimi_delivery import sms_client
from alimi_delivery.provider_message import NoticeMessage
from alimi_delivery.service import ChannelDelivery, retrying
from alimi_delivery.sms_client import SmsClient, SmsMessage, SmsResult

KOREA = "+82"


class SmsDelivery(ChannelDelivery[SmsClient]):
    channel = "sms"
    provider = sms_client.PROVIDER

    async def send(
        self, batch: DeliveryBatch, notice: NoticeMessage, claimed: list[Recipient]
    ) -> list[Outcome]:
        # One request per (locale, SMS or LMS): the text is shared, the name is a parameter.
        groups: dict[tuple[str, sms_kind.Kind], list[Recipient]] = defaultdict(list)
        for r in claimed:
            text = notice.for_locale(r.locale)
            groups[(r.locale, sms_kind.sms_kind(text.text_for(r.name)))].append(r)
        outcomes: list[Outcome] = []
        for (locale, kind), group in groups.items():
            for people in self.per_call(group):
                outcomes += await self._send(batch, notice, locale, kind, people)
        return outcomes

    async def _send(
        self,
        batch: DeliveryBatch,
        notice: NoticeMessage,
        locale: str,
        kind: sms_kind.Kind,
        people: Sequence[Recipient],
    ) -> list[Outcome]:
        """One request: ``people`` of one locale and kind."""
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
            self.client.send(
                kind=kind, body=text.provider_body(), title=text.title, messages=messages
            ),
        )
        outcomes = []
        for r, res in zip(people, results, strict=True):
            extra: dict[str, Any] = {}
            if not r.phone.startswith(KOREA):
                # International routes bill by GSM-7 / UCS-2 segments, not EUC-KR bytes.
                parts = sms_encoding.segments(text.text_for(r.name))
                extra = {"encoding": parts.encoding, "segments": parts.count}
            outcomes.append(sms_outcome(r, res, kind, extra))
        return outcomes


def sms_outcome(
    recipient: Recipient, result: SmsResult, kind: str, extra: dict[str, Any]
) -> Outcome:
    if result.outcome == "sent":
        return Outcome(
            recipient.subject_id,
            states.SENT,
            message_id=result.message_id,
            message_type=kind,
            extra=extra,
        )
    if result.outcome == "retry":
        return retrying(result, recipient.subject_id, message_type=kind, extra=extra)
    return Outcome(
        recipient.subject_id,
        states.FAILED,
        message_type=kind,
        error_code=result.error_code,
        error=result.error,
        extra=extra,
    )
