"""Signing and verifying delivery-report webhooks."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import pytest

from alimi import report_signature as signature
from alimi.report_signature import SignatureError

SECRET = b"sandbox-report-secret"
BODY = b'{"reports":[{"messageId":"r1-1"}]}'
NOW = 1_767_225_600


def check(**changes: Any) -> int:
    ts = str(NOW)
    args: dict[str, Any] = {
        "timestamp": ts,
        "signature": signature.sign(SECRET, NOW, BODY),
        "body": BODY,
        "now": NOW,
        "max_skew_s": 300,
    } | changes
    secret = args.pop("secret", SECRET)
    return signature.verify(secret, **args)


def test_when_a_report_is_signed__then_the_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    expected = hmac.new(SECRET, f"{NOW}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert signature.sign(SECRET, NOW, BODY) == f"v1={expected}"


def test_when_headers_are_made__then_they_carry_the_timestamp_and_its_signature() -> None:
    made = signature.headers(SECRET, BODY, now=NOW + 0.9)
    assert made == {
        "X-Alimi-Timestamp": str(NOW),
        "X-Alimi-Signature": signature.sign(SECRET, NOW, BODY),
    }


def test_when_signature_and_timestamp_are_valid__then_verify_returns_the_timestamp() -> None:
    assert check() == NOW


def test_when_signed_with_another_secret__then_it_is_refused() -> None:
    with pytest.raises(SignatureError, match="does not match"):
        check(secret=b"another-secret-of-16+")


def test_when_the_body_was_tampered_with__then_it_is_refused() -> None:
    with pytest.raises(SignatureError, match="does not match"):
        check(body=BODY.replace(b"r1-1", b"r1-2"))


def test_when_the_timestamp_was_changed_after_signing__then_it_is_refused() -> None:
    with pytest.raises(SignatureError, match="does not match"):
        check(timestamp=str(NOW + 1))


@pytest.mark.parametrize("offset", [-301, 301, -10_000])
def test_when_the_timestamp_is_too_old_or_too_new__then_it_is_refused(offset: int) -> None:
    signed_at = NOW + offset
    with pytest.raises(SignatureError, match="300 s"):
        check(timestamp=str(signed_at), signature=signature.sign(SECRET, signed_at, BODY))


@pytest.mark.parametrize("offset", [-300, 300])
def test_when_the_timestamp_is_at_the_edge_of_the_window__then_it_is_accepted(offset: int) -> None:
    signed_at = NOW + offset
    assert check(timestamp=str(signed_at), signature=signature.sign(SECRET, signed_at, BODY))


@pytest.mark.parametrize(
    ("timestamp", "sig"),
    [
        (None, "good"),
        ("", "good"),
        (str(NOW), None),
        (str(NOW), ""),
        ("abc", "good"),
        ("-1767225600", "good"),
        ("1767225600.5", "good"),
        (str(NOW), "v2=" + "0" * 64),
        (str(NOW), "0" * 64),
        (str(NOW), "v1=" + "0" * 63),
        (str(NOW), "v1=" + "A" * 64),
        (str(NOW), "v1=" + "é" * 64),
    ],
)
def test_when_a_header_is_missing_or_malformed__then_it_is_refused(
    timestamp: str | None, sig: str | None
) -> None:
    if sig == "good":
        sig = signature.sign(SECRET, NOW, BODY)
    with pytest.raises(SignatureError):
        check(timestamp=timestamp, signature=sig)


def test_when_signatures_are_compared__then_the_comparison_is_constant_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(signature.hmac, "compare_digest", spy)
    check()
    with pytest.raises(SignatureError):
        check(secret=b"another-secret-of-16+")
    assert len(calls) == 2
