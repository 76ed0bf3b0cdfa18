"""One owner at a time for a long piece of work: a lease (owner, expiry) on a document.

A lease is two fields of a document: ``lease.owner`` and ``lease.until``. Taking
it succeeds when nobody holds it or the holder's time is over; renewing it
succeeds only for the holder. Every write is one conditional update (no
``$or``: a query planner may scan for one), so two takers never both win. An
owner that dies simply stops renewing, and the work is taken over once its
lease is over — never before.

:class:`Named` is a lease of its own document in ``leases`` (the completion
tracker, a dead-letter replay); partitions and inbox entries keep theirs on
their own documents.
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from alimi.store import Store

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)  # the lease of work nobody has taken yet


def owner_id(role: str) -> str:
    """Who takes a lease: this process (host, pid) and a random part, per role."""
    return f"{role}@{socket.gethostname()}:{os.getpid()}#{secrets.token_hex(3)}"


def free() -> dict[str, Any]:
    """The lease of a new document: held by nobody."""
    return {"owner": None, "until": EPOCH}


async def take(
    collection: AsyncCollection[dict[str, Any]],
    doc_id: str,
    owner: str,
    ttl_s: float,
    *,
    where: Mapping[str, Any] | None = None,
) -> bool:
    """Take the lease of ``doc_id`` for ``ttl_s`` (or renew it, if ``owner`` holds it);
    ``where`` adds conditions the document must meet."""
    now = datetime.now(UTC)
    until = now + timedelta(seconds=ttl_s)
    extra = dict(where or {})
    mine = await collection.update_one(
        {"_id": doc_id, "lease.owner": owner, **extra}, {"$set": {"lease.until": until}}
    )
    if mine.matched_count:
        return True
    taken = await collection.update_one(
        {"_id": doc_id, "lease.until": {"$lt": now}, **extra},
        {"$set": {"lease": {"owner": owner, "until": until, "taken_at": now}}},
    )
    return taken.matched_count == 1


async def renew(
    collection: AsyncCollection[dict[str, Any]],
    doc_id: str,
    owner: str,
    ttl_s: float,
    *,
    changes: Mapping[str, Any] | None = None,
    inc: Mapping[str, Any] | None = None,
) -> bool:
    """Extend ``owner``'s lease (with ``changes``/``inc`` in the same write); False if
    ``owner`` lost it, in which case nothing is written."""
    until = datetime.now(UTC) + timedelta(seconds=ttl_s)
    update: dict[str, Any] = {"$set": {"lease.until": until, **(changes or {})}}
    if inc:
        update["$inc"] = dict(inc)
    done = await collection.update_one({"_id": doc_id, "lease.owner": owner}, update)
    return done.matched_count == 1


async def release(
    collection: AsyncCollection[dict[str, Any]],
    doc_id: str,
    owner: str,
    *,
    changes: Mapping[str, Any] | None = None,
) -> bool:
    """Give the lease up (with ``changes`` in the same write); False if not held."""
    done = await collection.update_one(
        {"_id": doc_id, "lease.owner": owner},
        {"$set": {"lease": free(), **(changes or {})}},
    )
    return done.matched_count == 1


class Named:
    """A lease of its own, named, in the ``leases`` collection."""

    def __init__(self, store: Store, name: str, owner: str, ttl_s: float) -> None:
        self.store = store
        self.name = name
        self.owner = owner
        self.ttl_s = ttl_s

    async def acquire(self) -> bool:
        """Take or renew it; False while another live owner holds it."""
        if await take(self.store.leases, self.name, self.owner, self.ttl_s):
            return True
        try:
            now = datetime.now(UTC)
            await self.store.leases.insert_one(
                {
                    "_id": self.name,
                    "lease": {
                        "owner": self.owner,
                        "until": now + timedelta(seconds=self.ttl_s),
                        "taken_at": now,
                    },
                }
            )
        except DuplicateKeyError:
            return False  # it exists and someone else holds it
        return True

    async def release(self) -> None:
        await release(self.store.leases, self.name, self.owner)

    async def holder(self) -> str | None:
        found = await self.store.leases.find_one({"_id": self.name})
        lease = (found or {}).get("lease") or {}
        until = lease.get("until")
        live = isinstance(until, datetime) and _utc(until) > datetime.now(UTC)
        return lease.get("owner") if live else None


def _utc(at: datetime) -> datetime:
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at
