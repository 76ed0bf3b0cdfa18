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

import aiohttp

from alimi import phone as phones
from alimi_delivery.provider_result import (
    ProviderResult,
    all_failed,
    retry_after,
    transport_failure,
)

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


class KakaoGateway:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        base_url: str,
        app_key: str,
        secret_key: str,
        sender_key: str,
        timeout_s: float,
    ) -> None:
        self.session = session
        self.url = f"{base_url.rstrip('/')}/alimtalk/v2.3/appkeys/{app_key}/messages"
        self.secret_key = secret_key
        self.sender_key = sender_key
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)

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
            "senderKey": self.sender_key,
            "templateCode": template_code,
            "recipientList": recipients,
        }
        try:
            async with self.session.post(
                self.url,
                json=payload,
                headers={"X-Secret-Key": self.secret_key},
                timeout=self.timeout,
            ) as resp:
                status = resp.status
                wait = retry_after(resp.headers)
                data = await resp.json(content_type=None) if status < 500 else None
        except (aiohttp.ClientError, TimeoutError) as exc:
            code, in_doubt = transport_failure(exc)
            return self._all(
                messages, "retry", code, f"{type(exc).__name__}: {exc}", in_doubt=in_doubt
            )
        except ValueError as exc:  # a body that is not JSON
            return self._all(messages, "retry", "bad_response", str(exc), in_doubt=True)
        header = (data or {}).get("header", {})
        if status == 429 or header.get("resultCode") in RETRY_CODES:
            return self._all(
                messages,
                "retry",
                "volume_exceeded",
                "provider volume exceeded",
                retry_after_s=wait if wait is not None else 1.0,
            )
        if status >= 500 or data is None:
            return self._all(messages, "retry", f"http_{status}", "provider unavailable")
        if status >= 400 or not header.get("isSuccessful"):
            code = int(header.get("resultCode", -1))
            outcome: Outcome = (
                "rejected" if code in REJECTED_CODES or status == 401 else "permanent"
            )
            return self._all(messages, outcome, str(code), header.get("resultMessage", "rejected"))
        message = data.get("message") or {}
        request_id = message.get("requestId", "")
        by_key = {r.get("recipientGroupingKey"): r for r in message.get("sendResults") or []}
        results = []
        for m in messages:
            r = by_key.get(m.key)
            if r is None:
                results.append(
                    KakaoResult(m.key, "retry", error_code="missing_result", error="no result")
                )
                continue
            code = int(r.get("resultCode", -1))
            outcome = outcome_of(code)
            results.append(
                KakaoResult(
                    m.key,
                    outcome,
                    message_id=f"{request_id}-{r['recipientSeq']}" if outcome == "sent" else None,
                    error_code=None if code == 0 else str(code),
                    error=None if code == 0 else str(r.get("resultMessage", "")),
                )
            )
        return results

    async def find(self, key: str) -> str | None:
        """The message id the provider gave a message sent with ``key``, if it has one."""
        async with self.session.get(
            self.url,
            params={"recipientGroupingKey": key},
            headers={"X-Secret-Key": self.secret_key},
            timeout=self.timeout,
        ) as resp:
            resp.raise_for_status()
            data = await resp.json(content_type=None)
        found = (data.get("messageSearchResultResponse") or {}).get("messages") or []
        if not found:
            return None
        return f"{found[0]['requestId']}-{found[0]['recipientSeq']}"

    @staticmethod
    def _all(
        messages: list[KakaoMessage],
        outcome: Outcome,
        code: str,
        error: str,
        *,
        in_doubt: bool = False,
        retry_after_s: float | None = None,
    ) -> list[KakaoResult]:
        if outcome == "rejected":
            log.error("alimtalk refused the request", extra={"error_code": code, "error": error})
        return all_failed(
            (m.key for m in messages),
            outcome,
            code,
            error,
            log=log,
            what="alimtalk",
            in_doubt=in_doubt,
            retry_after_s=retry_after_s,
        )
