"""What a provider client returns for each person of a request, and shared failure handling."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

import aiohttp

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


def all_failed(
    keys: Iterable[str],
    outcome: OutcomeT,
    code: str,
    error: str,
    *,
    log: logging.Logger,
    what: str,
    in_doubt: bool = False,
    retry_after_s: float | None = None,
) -> list[ProviderResult[OutcomeT]]:
    """The same failure for everyone in a request that failed as a whole, logged once."""
    results = [
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
    log.warning(
        f"{what} request failed",
        extra={"outcome": outcome, "error_code": code, "error": error, "count": len(results)},
    )
    return results


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


def retry_after(headers: object) -> float | None:
    """The ``Retry-After`` seconds of a response's headers, if it says so."""
    value = getattr(headers, "get", lambda _k: None)("Retry-After")
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
