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
