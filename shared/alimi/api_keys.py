"""API keys: generated once, shown once, stored only as a hash.

A key reads ``ak_<key id>.<secret>``. The key id finds the stored record; the
secret's SHA-256 is compared in constant time (a secret of 256 random bits
needs no slow hash). Records: ``{_id: key id, name, hash, scopes,
allow_self_approval, created_at, revoked_at}``.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from alimi.store import Store

PREFIX = "ak_"
TOKEN = re.compile(r"^ak_([a-z0-9]{4,40})\.([A-Za-z0-9_\-]{16,128})$")

# What a key may do. admin includes every other scope.
SCOPES = {
    "subjects:write": "import people into the subject directory",
    "incidents:write": "create incidents and post notices",
    "incidents:read": "read incidents, notices, previews and counts",
    "notices:approve": "approve, halt and resume notices, replay dead letters",
    "receipts:read": "read delivery receipts",
    "admin": "everything, and manage API keys",
}
ADMIN = "admin"


@dataclass(frozen=True)
class ApiKey:
    key_id: str
    name: str
    scopes: frozenset[str]
    allow_self_approval: bool = False

    def allows(self, scope: str) -> bool:
        return scope in self.scopes or ADMIN in self.scopes


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def invalid_scopes(scopes: list[str]) -> list[str]:
    return [s for s in scopes if s not in SCOPES]


async def create(
    store: Store,
    *,
    name: str,
    scopes: list[str],
    allow_self_approval: bool = False,
    key_id: str | None = None,
    secret: str | None = None,
) -> tuple[str, ApiKey]:
    """Store a new key; return its token (shown once) and what it is.

    ``key_id`` and ``secret`` are for fixed local development keys only.
    """
    bad = invalid_scopes(scopes)
    if bad or not scopes:
        raise ValueError(f"unknown scopes {bad}; known: {', '.join(SCOPES)}")
    key_id = key_id or secrets.token_hex(8)
    secret = secret or secrets.token_urlsafe(32)
    record: dict[str, Any] = {
        "_id": key_id,
        "name": name,
        "hash": digest(secret),
        "scopes": sorted(set(scopes)),
        "allow_self_approval": allow_self_approval,
        "created_at": datetime.now(UTC),
        "revoked_at": None,
    }
    await store.api_keys.insert_one(record)
    return f"{PREFIX}{key_id}.{secret}", _key(record)


async def ensure(
    store: Store, *, key_id: str, secret: str, name: str, scopes: list[str], **kw: Any
) -> str:
    """Create the fixed key ``key_id`` unless it exists (local development)."""
    existing = await store.api_keys.find_one({"_id": key_id})
    if existing is None:
        token, _ = await create(store, name=name, scopes=scopes, key_id=key_id, secret=secret, **kw)
        return token
    return f"{PREFIX}{key_id}.{secret}"


async def verify(store: Store, token: str) -> ApiKey | None:
    """The key ``token`` is, if it is a valid, unrevoked key."""
    match = TOKEN.match(token)
    if match is None:
        return None
    key_id, secret = match.groups()
    record = await store.api_keys.find_one({"_id": key_id})
    if record is None or record.get("revoked_at") is not None:
        hmac.compare_digest(digest(secret), digest("x"))  # the same work either way
        return None
    if not hmac.compare_digest(record["hash"], digest(secret)):
        return None
    return _key(record)


async def revoke(store: Store, key_id: str) -> bool:
    result = await store.api_keys.update_one(
        {"_id": key_id, "revoked_at": None}, {"$set": {"revoked_at": datetime.now(UTC)}}
    )
    return result.modified_count == 1


def _key(record: dict[str, Any]) -> ApiKey:
    return ApiKey(
        key_id=record["_id"],
        name=record["name"],
        scopes=frozenset(record["scopes"]),
        allow_self_approval=bool(record.get("allow_self_approval")),
    )
