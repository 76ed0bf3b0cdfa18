"""The one client of the SMS gateway (NHN Cloud SMS v3.0 shape).

It owns the connection pool, timeouts and the mapping of the provider's
answers to outcomes: ``sent``, ``retry`` (the provider or the network failed;
try again later) or ``permanent`` (this request can never succeed as it is).
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

log = logging.getLogger("alimi.delivery.sms")

PROVIDER = "sandbox-sms"
Outcome = Literal["sent", "retry", "permanent"]


@dataclass(frozen=True)
class SmsMessage:
    key: str  # idempotency key: the receipt id, sent as recipientGroupingKey
    phone: str  # E.164
    parameters: dict[str, str]  # fills ##name## style placeholders of the body


SmsResult: TypeAlias = ProviderResult[Outcome]


class SmsGateway:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        base_url: str,
        app_key: str,
        secret_key: str,
        sender_no: str,
        timeout_s: float,
    ) -> None:
        self.session = session
        self.base_url = base_url.rstrip("/")
        self.app_key = app_key
        self.secret_key = secret_key
        self.sender_no = sender_no
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)

    async def send(
        self, *, kind: Literal["SMS", "LMS"], body: str, title: str, messages: list[SmsMessage]
    ) -> list[SmsResult]:
        """Send one request for up to 1,000 messages sharing ``body``; one result each."""
        path = "sms" if kind == "SMS" else "mms"
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
            "sendNo": self.sender_no,
            "recipientList": recipients,
        }
        if kind == "LMS":
            payload["title"] = title
        url = f"{self.base_url}/sms/v3.0/appKeys/{self.app_key}/sender/{path}"
        try:
            async with self.session.post(
                url, json=payload, headers={"X-Secret-Key": self.secret_key}, timeout=self.timeout
            ) as resp:
                status = resp.status
                wait = retry_after(resp.headers) if status == 429 else None
                data = await resp.json(content_type=None) if status < 500 else None
        except (aiohttp.ClientError, TimeoutError) as exc:
            code, in_doubt = transport_failure(exc)
            return self._all(
                messages, "retry", code, f"{type(exc).__name__}: {exc}", in_doubt=in_doubt
            )
        except ValueError as exc:  # a body that is not JSON
            return self._all(messages, "retry", "bad_response", str(exc), in_doubt=True)
        if status == 429:
            return self._all(messages, "retry", "http_429", "rate limited", retry_after_s=wait)
        if status >= 500:
            return self._all(messages, "retry", f"http_{status}", "provider unavailable")
        header = (data or {}).get("header", {})
        if data is None or status >= 400 or not header.get("isSuccessful"):
            code = str(header.get("resultCode", f"http_{status}"))
            return self._all(messages, "permanent", code, header.get("resultMessage", "rejected"))
        by_key = {
            r.get("recipientGroupingKey"): r for r in data["body"]["data"].get("sendResultList", [])
        }
        request_id = data["body"]["data"].get("requestId", "")
        results = []
        for m in messages:
            r = by_key.get(m.key)
            if r is None:
                results.append(
                    SmsResult(
                        m.key,
                        "retry",
                        error_code="missing_result",
                        error="provider returned no result for this recipient",
                    )
                )
            elif r.get("resultCode") == 0:
                results.append(
                    SmsResult(m.key, "sent", message_id=f"{request_id}-{r['recipientSeq']}")
                )
            else:
                results.append(
                    SmsResult(
                        m.key,
                        "permanent",
                        error_code=str(r.get("resultCode")),
                        error=r.get("resultMessage", ""),
                    )
                )
        return results

    async def find(self, key: str) -> str | None:
        """The message id the provider gave a message sent with ``key``, if it has one."""
        url = f"{self.base_url}/sms/v3.0/appKeys/{self.app_key}/sender/messages"
        async with self.session.get(
            url,
            params={"recipientGroupingKey": key},
            headers={"X-Secret-Key": self.secret_key},
            timeout=self.timeout,
        ) as resp:
            resp.raise_for_status()
            data = await resp.json(content_type=None)
        found = (data.get("body") or {}).get("data") or []
        if not found:
            return None
        return f"{found[0]['requestId']}-{found[0]['recipientSeq']}"

    @staticmethod
    def _all(
        messages: list[SmsMessage],
        outcome: Outcome,
        code: str,
        error: str,
        *,
        in_doubt: bool = False,
        retry_after_s: float | None = None,
    ) -> list[SmsResult]:
        return all_failed(
            (m.key for m in messages),
            outcome,
            code,
            error,
            log=log,
            what="sms",
            in_doubt=in_doubt,
            retry_after_s=retry_after_s,
        )
