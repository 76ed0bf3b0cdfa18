"""Identifiers. Random ids are unguessable; receipt ids are deterministic."""

from __future__ import annotations

import secrets


def new_id(prefix: str) -> str:
    """``inc_8k3j...``: a short prefix that says what it is, and 80 random bits."""
    return f"{prefix}_{secrets.token_hex(10)}"


def public_id() -> str:
    """An unguessable id for a public URL (128 random bits)."""
    return secrets.token_urlsafe(16)


def receipt_id(notice_id: str, subject_id: str) -> str:
    """One receipt per (notice, person): a redelivered batch cannot make a second."""
    return f"{notice_id}:{subject_id}"


def batch_id(notice_id: str, channel: str, seq: int) -> str:
    return f"{notice_id}:{channel}:{seq:08d}"


def attempt_id(batch_id: str) -> str:
    """One handling of a batch: unique, so a redelivered batch is a new attempt."""
    return f"{batch_id}#{secrets.token_hex(6)}"


def provider_message_id(request_id: str, recipient_seq: object) -> str:
    """A provider message: its request and the recipient's place in it (NHN Cloud's shape)."""
    return f"{request_id}-{recipient_seq}"


def provider_request(message_id: str) -> str:
    """The request a :func:`provider_message_id` belongs to."""
    return message_id.rsplit("-", 1)[0]


def subject_of(receipt_id: str) -> str:
    """The subject id of a :func:`receipt_id` (notice ids hold no colon)."""
    return receipt_id.split(":", 1)[1]
