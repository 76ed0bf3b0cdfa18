"""The append-only audit log: every state change, with the API key that made it.

Entries are only ever inserted (nothing in Alimi updates or deletes them):
``{_id, at, key_id, key_name, action, target, details}``. Pass the
transaction's ``session`` to write an entry together with the change itself.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pymongo.asynchronous.client_session import AsyncClientSession

from alimi import ids
from alimi.api_keys import ApiKey
from alimi.store import Store


def entry(
    key: ApiKey, action: str, target: str, details: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {
        "_id": ids.new_id("aud"),
        "at": datetime.now(UTC),
        "key_id": key.key_id,
        "key_name": key.name,
        "action": action,
        "target": target,
        "details": details or {},
    }


async def record(
    store: Store,
    key: ApiKey,
    action: str,
    target: str,
    details: dict[str, Any] | None = None,
    *,
    session: AsyncClientSession | None = None,
) -> None:
    await store.audit.insert_one(entry(key, action, target, details), session=session)
