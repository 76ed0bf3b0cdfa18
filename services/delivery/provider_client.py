"""What the SMS and AlimTalk clients share: one HTTP call, its failures, the status query.

A provider client sends one request for many people and gets one result per
person back (:class:`ProviderResult`). :class:`ProviderClient` owns what does
not depend on the provider: the pooled session and timeout, the mapping of a
failed call (network, timeout, a body that is not JSON, 5xx, 429) to the same
result for everyone of the request, and the status query by idempotency key
(the receipt id, sent as ``recipientGroupingKey``) used before anyone in doubt
is sent to again. A subclass builds its payload and reads its provider's
answers.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import aiohttp

from alimi import ids

OutcomeT = TypeVar("OutcomeT", bound=str)

# Whole-call failures that count against a provider's circuit breaker.
CALL_FAILURES = ("network", "timeout", "bad_response", "http_5")


@dataclass(frozen=True)
class ProviderResult(Generic[OutcomeT]):
    key: str  # the idempotency key sent with the message: the receipt id
    outcome: OutcomeT
    message_id: str | None = None
    error_code: str | None = None
    error: str | None = None
    # The provider may have taken the message although we saw no answer
    # (a timeout, a connection lost after sending): ask it before sending again.
    in_doubt: bool = False
    retry_after_s: float | None = None  # the provider's Retry-After


@dataclass(frozen=True)
class Answer:
    """A provider's HTTP answer: status, headers' Retry-After, and the JSON body (None: 5xx)."""

    status: int
    retry_after_s: float | None
    data: dict[str, Any] | None


class CallFailed(Exception):
    """The call failed as a whole (network, timeout, a body that is not JSON)."""

    def __init__(self, code: str, error: str, *, in_doubt: bool) -> None:
        super().__init__(f"{code}: {error}")
        self.code = code
        self.error = error
        self.in_doubt = in_doubt


def transport_failure(exc: BaseException) -> tuple[str, bool]:
    """(error code, in doubt) for an exception raised by a provider call.

    Only a connection that was never made is certain not to have delivered
    anything; a timeout or a connection lost mid-call may have.
    """
    if isinstance(exc, TimeoutError):
        return "timeout", True
    if isinstance(exc, aiohttp.ClientConnectorError):
        return "network", False
    return "network", True


def retry_after(headers: Mapping[str, str]) -> float | None:
    """The ``Retry-After`` seconds of a response's headers, if it says so."""
    value = headers.get("Retry-After")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def call_failed(results: Iterable[ProviderResult[str]]) -> bool:
    """Did the call fail as a whole (what a circuit breaker counts)?"""
    listed = list(results)
    return bool(listed) and all(
        r.outcome == "retry" and (r.error_code or "").startswith(CALL_FAILURES) for r in listed
    )


class ProviderClient(Generic[OutcomeT]):
    """The base of one provider's client; ``what`` names it in logs.

    A subclass says where its API lives (``path``, with ``{app_key}``, below the
    provider's base URL), where its status query is (``find_path``, below that)
    and where the messages are in the query's answer (``found_at``).
    """

    what = "provider"
    log = logging.getLogger("alimi.delivery")
    path = ""
    find_path = ""
    found_at: tuple[str, str] = ("", "")

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        base_url: str,
        app_key: str,
        secret_key: str,
        sender: str,
        timeout_s: float,
    ) -> None:
        self.session = session
        self.base = base_url.rstrip("/") + self.path.format(app_key=app_key)
        self.secret_key = secret_key
        self.timeout_s = timeout_s
        self.sender = sender  # the sender number (SMS) or sender key (AlimTalk)
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)

    @property
    def headers(self) -> dict[str, str]:
        return {"X-Secret-Key": self.secret_key}

    async def post(self, url: str, payload: dict[str, Any]) -> Answer:
        """POST ``payload``; :class:`CallFailed` for a network error, a timeout or bad JSON."""
        try:
            async with self.session.post(
                url, json=payload, headers=self.headers, timeout=self.timeout
            ) as resp:
                status = resp.status
                wait = retry_after(resp.headers)
                data = await resp.json(content_type=None) if status < 500 else None
        except (aiohttp.ClientError, TimeoutError) as exc:
            code, in_doubt = transport_failure(exc)
            raise CallFailed(code, self.describe(exc), in_doubt=in_doubt) from None
        except ValueError as exc:  # a body that is not JSON
            raise CallFailed("bad_response", str(exc), in_doubt=True) from None
        return Answer(status, wait, data if isinstance(data, dict) else None)

    def describe(self, exc: BaseException) -> str:
        """A failed call's error, a timeout naming the setting that bounds it."""
        if isinstance(exc, TimeoutError):
            return (
                f"TimeoutError: no answer from {self.what} within {self.timeout_s:g} s "
                "(ALIMI_PROVIDER_TIMEOUT_S)"
            )
        return f"{type(exc).__name__}: {exc}"

    async def find(self, key: str) -> str | None:
        """The message id the provider gave a message sent with ``key``, if it has one.

        A timeout raises :class:`TimeoutError` naming the bound."""
        try:
            async with self.session.get(
                self.find_url,
                params={"recipientGroupingKey": key},
                headers=self.headers,
                timeout=self.timeout,
            ) as resp:
                resp.raise_for_status()
                data = await resp.json(content_type=None)
        except TimeoutError as exc:
            raise TimeoutError(self.describe(exc).removeprefix("TimeoutError: ")) from None
        found = self.found_messages(data or {})
        if not found:
            return None
        return ids.provider_message_id(found[0]["requestId"], found[0]["recipientSeq"])

    @property
    def find_url(self) -> str:
        return self.base + self.find_path

    def found_messages(self, data: dict[str, Any]) -> list[dict[str, Any]]:
        """The messages a status query answered with (provider-specific envelope)."""
        envelope, messages = self.found_at
        return list((data.get(envelope) or {}).get(messages) or [])

    def everyone(
        self,
        keys: Sequence[str],
        outcome: OutcomeT,
        code: str,
        error: str,
        *,
        in_doubt: bool = False,
        retry_after_s: float | None = None,
    ) -> list[ProviderResult[OutcomeT]]:
        """The same failure for everyone in a request that failed as a whole, logged once."""
        self.log.warning(
            f"{self.what} request failed",
            extra={"outcome": outcome, "error_code": code, "error": error, "count": len(keys)},
        )
        return [
            ProviderResult(
                key,
                outcome,
                error_code=code,
                error=error,
                in_doubt=in_doubt,
                retry_after_s=retry_after_s,
            )
            for key in keys
        ]

    def call_failed(
        self, keys: Sequence[str], failure: CallFailed
    ) -> list[ProviderResult[OutcomeT]]:
        retry: OutcomeT = "retry"  # type: ignore[assignment]  # every provider's outcomes have it
        return self.everyone(keys, retry, failure.code, failure.error, in_doubt=failure.in_doubt)
