"""Signing and verifying delivery-report webhooks (pure functions, no I/O).

A sender signs ``f"{timestamp}.".encode() + raw_body`` with HMAC-SHA256 keyed
by the shared secret and sends::

    X-Alimi-Timestamp: 1767225600
    X-Alimi-Signature: v1=<lowercase hex digest>

The receiver recomputes the digest, compares it in constant time and refuses a
timestamp too far from its own clock, so a captured request cannot be replayed
later. The sandbox's providers sign with :func:`headers`; the receipts service
checks with :func:`verify`: one rule on both sides of the webhook.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time

TIMESTAMP_HEADER = "X-Alimi-Timestamp"
SIGNATURE_HEADER = "X-Alimi-Signature"
SCHEME = "v1"
DEFAULT_MAX_SKEW_S = 300

_TIMESTAMP = re.compile(r"^[0-9]{1,12}$")
_SIGNATURE = re.compile(r"^v1=([0-9a-f]{64})$")


class SignatureError(Exception):
    """The request is not signed, not signed with our secret, or too old or too new."""


def digest(secret: bytes, timestamp: int, body: bytes) -> str:
    """The lowercase hex HMAC-SHA256 of ``"{timestamp}." + body``."""
    return hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    """The ``X-Alimi-Signature`` value for ``body`` sent at ``timestamp``."""
    return f"{SCHEME}={digest(secret, timestamp, body)}"


def headers(secret: bytes, body: bytes, *, now: float | None = None) -> dict[str, str]:
    """Both headers a sender adds to a report request."""
    timestamp = int(time.time() if now is None else now)
    return {
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: sign(secret, timestamp, body),
    }


def verify(
    secret: bytes,
    *,
    timestamp: str | None,
    signature: str | None,
    body: bytes,
    now: float | None = None,
    max_skew_s: int = DEFAULT_MAX_SKEW_S,
) -> int:
    """Return the signed timestamp, or raise :class:`SignatureError` saying what is wrong."""
    if not timestamp or not signature:
        raise SignatureError(f"{TIMESTAMP_HEADER} and {SIGNATURE_HEADER} are required")
    if not _TIMESTAMP.match(timestamp.strip()):
        raise SignatureError(f"{TIMESTAMP_HEADER} must be integer unix seconds")
    match = _SIGNATURE.match(signature.strip())
    if match is None:
        raise SignatureError(f"{SIGNATURE_HEADER} must be 'v1=' and 64 lowercase hex digits")
    signed_at = int(timestamp.strip())
    expected = digest(secret, signed_at, body)
    if not hmac.compare_digest(expected.encode(), match.group(1).encode()):
        raise SignatureError("signature does not match the body and timestamp")
    clock = time.time() if now is None else now
    if abs(clock - signed_at) > max_skew_s:
        raise SignatureError(f"timestamp is more than {max_skew_s} s away from the server clock")
    return signed_at
