"""The one client of the Kakao AlimTalk API (NHN Cloud Bizmessage AlimTalk v2.3 shape).

It maps the provider's answers to outcomes the delivery service acts on:

- ``sent``: accepted (resultCode 0);
- ``unreachable``: the person cannot get AlimTalk (not a KakaoTalk user,
  blocked the channel, no recent use: 3018, 3050): fall back to SMS/LMS;
- ``uncertain``: the provider does not know whether it arrived (3005, 3060):
  never fall back, that could tell the person twice;
- ``rejected``: the template or the account does not fit (template mismatch
  -3011, template not found -3003, wrong sender key -3001, bad credentials):
  a permanent failure of Kakao for this notice, recorded with the provider's
  words; the person falls back to SMS/LMS if their chain allows it;
- ``retry``: volume exceeded (429 / -1030), a provider or network failure;
- ``permanent``: this recipient can never succeed (invalid number -2005).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

from alimi import ids
from alimi import phone as phones
from alimi_delivery.provider_client import CallFailed, ProviderClient, ProviderResult

log = logging.getLogger("alimi.delivery.kakao")

PROVIDER = "sandbox-kakao"
Outcome = Literal["sent", "unreachable", "uncertain", "rejected", "retry", "permanent"]

UNREACHABLE_CODES = frozenset({3018, 3050})
UNCERTAIN_CODES = frozenset({3005, 3060})
REJECTED_CODES = frozenset({-3011, -3003, -3001, -1000, -1001})
RETRY_CODES = frozenset({-1030})


@dataclass(frozen=True)
class KakaoMessage:
    key: str  # idempotency key: the receipt id, sent as recipientGroupingKey
    phone: str  # E.164
    parameters: dict[str, str]  # the template's #{variable} values for this person


KakaoResult: TypeAlias = ProviderResult[Outcome]


def outcome_of(code: int) -> Outcome:
    if code == 0:
        return "sent"
    if code in UNREACHABLE_CODES:
        return "unreachable"
    if code in UNCERTAIN_CODES:
        return "uncertain"
    if code in REJECTED_CODES:
        return "rejected"
    if code in RETRY_CODES:
        return "retry"
    return "permanent"


class KakaoClient(ProviderClient[Outcome]):
    what = "alimtalk"
    log = log
    path = "/alimtalk/v2.3/appkeys/{app_key}/messages"
    found_at = ("messageSearchResultResponse", "messages")

    async def send(
        self, *, template_code: str, buttons: list[dict[str, Any]], messages: list[KakaoMessage]
    ) -> list[KakaoResult]:
        """One request for up to 1,000 people of one template; one result each."""
        recipients = []
        for m in messages:
            country, number = phones.national(m.phone)
            entry: dict[str, Any] = {
                "recipientNo": number if country else f"+{number}",
                "templateParameter": m.parameters,
                "recipientGroupingKey": m.key,
            }
            if buttons:
                entry["buttons"] = buttons
            recipients.append(entry)
        payload = {
            "senderKey": self.sender,
            "templateCode": template_code,
            "recipientList": recipients,
        }
        keys = [m.key for m in messages]
        try:
            answer = await self.post(self.base, payload)
        except CallFailed as failure:
            return self.call_failed(keys, failure)
        data = answer.data
        header = (data or {}).get("header", {})
        if answer.status == 429 or header.get("resultCode") in RETRY_CODES:
            wait = answer.retry_after_s
            return self.everyone(
                keys,
                "retry",
                "volume_exceeded",
                "provider volume exceeded",
                retry_after_s=wait if wait is not None else 1.0,
            )
        if answer.status >= 500 or data is None:
            return self.everyone(keys, "retry", f"http_{answer.status}", "provider unavailable")
        if answer.status >= 400 or not header.get("isSuccessful"):
            code = int(header.get("resultCode", -1))
            outcome: Outcome = (
                "rejected" if code in REJECTED_CODES or answer.status == 401 else "permanent"
            )
            if outcome == "rejected":
                log.error(
                    "alimtalk refused the request",
                    extra={"error_code": str(code), "error": header.get("resultMessage")},
                )
            return self.everyone(keys, outcome, str(code), header.get("resultMessage", "rejected"))
        message = data.get("message") or {}
        request_id = str(message.get("requestId", ""))
        by_key = {r.get("recipientGroupingKey"): r for r in message.get("sendResults") or []}
        return [self._result(m.key, by_key.get(m.key), request_id) for m in messages]

    @staticmethod
    def _result(key: str, r: dict[str, Any] | None, request_id: str) -> KakaoResult:
        if r is None:
            return KakaoResult(key, "retry", error_code="missing_result", error="no result")
        code = int(r.get("resultCode", -1))
        outcome = outcome_of(code)
        return KakaoResult(
            key,
            outcome,
            message_id=(
                ids.provider_message_id(request_id, r["recipientSeq"])
                if outcome == "sent"
                else None
            ),
            error_code=None if code == 0 else str(code),
            error=None if code == 0 else str(r.get("resultMessage", "")),
        )
