"""Writes that meet a document already stored: the duplicate-key error told apart from
every other failure.

Receipts, attempts, partitions, delivery reports and subjects are written with
ids derived from what they are, so writing one again collides with the first
(MongoDB's error 11000) instead of creating a second. Such a collision is an
answer ("it is there already"), any other write error a failure. An unordered
bulk write reports its collisions among its other errors; :func:`collided` keeps
the one rule for reading them: only duplicate keys, or the error goes on up —
a write-concern error too, since then even the writes that took are not known to
last.
"""

from __future__ import annotations

from pymongo.errors import BulkWriteError, DuplicateKeyError

DUPLICATE_KEY = 11000


def collided(exc: BulkWriteError) -> list[int]:
    """The positions, in order, of the documents of an unordered bulk write that
    collided with stored ones; raises ``exc`` again if it failed in any other way."""
    details = exc.details or {}
    errors = details.get("writeErrors") or []
    if details.get("writeConcernErrors") or not errors:
        raise exc
    if any(e.get("code") != DUPLICATE_KEY for e in errors):
        raise exc
    return sorted(e["index"] for e in errors)


def only_duplicates(exc: DuplicateKeyError | BulkWriteError) -> bool:
    """True when every write that failed collided with a stored document."""
    if isinstance(exc, DuplicateKeyError):
        return True
    try:
        collided(exc)
    except BulkWriteError:
        return False
    return True
