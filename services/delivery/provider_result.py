"""What a provider client returns for each person of a request."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

OutcomeT = TypeVar("OutcomeT", bound=str)


@dataclass(frozen=True)
class ProviderResult(Generic[OutcomeT]):
    key: str  # the idempotency key sent with the message: the receipt id
    outcome: OutcomeT
    message_id: str | None = None
    error_code: str | None = None
    error: str | None = None


def all_failed(
    keys: Iterable[str], outcome: OutcomeT, code: str, error: str, *, log: logging.Logger, what: str
) -> list[ProviderResult[OutcomeT]]:
    """The same failure for everyone in a request that failed as a whole, logged once."""
    results = [ProviderResult(key, outcome, error_code=code, error=error) for key in keys]
    log.warning(
        f"{what} request failed",
        extra={"outcome": outcome, "error_code": code, "error": error, "count": len(results)},
    )
    return results
