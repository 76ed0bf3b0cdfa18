"""The one client of the SMS gateway (NHN Cloud SMS v3.0 shape).

It maps the provider's answers to outcomes: ``sent``, ``retry`` (the provider
or the network failed; try again later) or ``permanent`` (this request can
never succeed as it is). Connection pool, timeouts, failed calls and the
status query are :class:`~alimi_delivery.provider_client.ProviderClient`'s.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

from alimi import ids
from alimi import phone as phones
from alimi_delivery.provider_client import CallFailed, ProviderClient, ProviderResult

log = logging.getLogger("alimi.delivery.sms")

PROVIDER = "sandbox-sms"
Outcome = Literal["sent", "retry", "permanent"]


@dataclass(frozen=True)
class SmsMessage:
    key: str  # idempotency key: the receipt id, sent as recipientGroupingKey
    phone: str  # E.164
    parameters: dict[str, str]  # fills ##name## style placeholders of the body


SmsResult: TypeAlias = ProviderResult[Outcome]


class SmsClient(ProviderClient[Outcome]):
    what = "sms"
    log = log
    path = "/sms/v3.0/appKeys/{app_key}/sender"
    find_path = "/messages"
    found_at = ("body", "data")

    async def send(
        self, *, kind: Literal["SMS", "LMS"], body: str, title: str, messages: list[SmsMessage]
    ) -> list[SmsResult]:
        """Send one request for up to 1,000 messages sharing ``body``; one result each."""
        recipients = []
        for m in messages:
            country, number = phones.national(m.phone)
            entry: dict[str, Any] = {
                "recipientNo": number,
                "recipientGroupingKey": m.key,
                "templateParameter": m.parameters,
            }
            if country:
                entry["countryCode"] = country
            else:
                entry["internationalRecipientNo"] = number
            recipients.append(entry)
        payload: dict[str, Any] = {
            "body": body,
            "sendNo": self.sender,
            "recipientList": recipients,
        }
        if kind == "LMS":
            payload["title"] = title
        keys = [m.key for m in messages]
        try:
            answer = await self.post(f"{self.base}/{'sms' if kind == 'SMS' else 'mms'}", payload)
        except CallFailed as failure:
            return self.call_failed(keys, failure)
        if answer.status == 429:
            return self.everyone(
                keys, "retry", "http_429", "rate limited", retry_after_s=answer.retry_after_s
            )
        if answer.status >= 500:
            return self.everyone(keys, "retry", f"http_{answer.status}", "provider unavailable")
        data = answer.data
        header = (data or {}).get("header", {})
        if data is None or answer.status >= 400 or not header.get("isSuccessful"):
            code = str(header.get("resultCode", f"http_{answer.status}"))
            return self.everyone(keys, "permanent", code, header.get("resultMessage", "rejected"))
        sent = data["body"]["data"]
        by_key = {r.get("recipientGroupingKey"): r for r in sent.get("sendResultList", [])}
        request_id = str(sent.get("requestId", ""))
        return [self._result(m.key, by_key.get(m.key), request_id) for m in messages]

    @staticmethod
    def _result(key: str, r: dict[str, Any] | None, request_id: str) -> SmsResult:
        if r is None:
            return SmsResult(
                key,
                "retry",
                error_code="missing_result",
                error="provider returned no result for this recipient",
            )
        if r.get("resultCode") == 0:
            return SmsResult(
                key, "sent", message_id=ids.provider_message_id(request_id, r["recipientSeq"])
            )
        return SmsResult(
            key,
            "permanent",
            error_code=str(r.get("resultCode")),
            error=r.get("resultMessage", ""),
        )
