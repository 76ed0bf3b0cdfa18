"""A partition of a notice's audience, streamed in phone-hash order, numbers decrypted.

Phone numbers are stored encrypted; they are decrypted here, one subject at a
time as the audience streams by, and leave only inside delivery batches (the
broker is inside the trust boundary: the provider needs the number).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

from alimi import phone as phones
from alimi.crypto import Keyring, Unreadable
from alimi.store import Store

log = logging.getLogger("alimi.segmenter")

# The order people are streamed in, and the subjects index that keeps it.
PHONE_ORDER = [("phone_hash", 1), ("_id", 1)]
SUBJECT_FIELDS = {
    "_id": 1,
    "phone_enc": 1,
    "phone_hash": 1,
    "name": 1,
    "locale": 1,
    "channels": 1,
    "kakao_reachable": 1,
}


def in_phone_order(
    query: dict[str, Any], after: str | None, lo: str = "", hi: str | None = None
) -> dict[str, Any]:
    """The audience ``query`` in ``[lo, hi)`` of the phone-hash space and past ``after``
    (the partition's checkpoint), written so that the index the order needs comes first.

    The same people on any server. MongoDB's planner weighs every index; a planner
    that takes the first indexed field (SecantusDB, the development server) would
    otherwise read the whole audience through its tag index and sort it in memory
    before the first batch (20 s at 100,000 people) instead of streaming it in
    ``phone_hash`` order. A list audience has its own index in that order.
    """
    bounds: dict[str, Any] = {"$gt": after} if after else {"$gte": lo}
    if hi is not None:
        bounds["$lt"] = hi
    if set(query) == {"lists"}:
        return {"lists": query["lists"], "phone_hash": bounds}
    return {"phone_hash": bounds, **query}


def phone_order_hint(query: dict[str, Any]) -> dict[str, Any]:
    """``hint`` the phone-hash index for an audience given by a filter (tags,
    attributes): a partition then reads its own range of the directory, once.

    Left to itself the development server's planner scans the whole collection
    for every partition (tags and attributes have no phone order) and sorts in
    memory: a notice of N people in N / 50,000 partitions read N²/50,000
    documents. An audience of ids or of a list is left to the planner: its own
    index finds its few people (or, for a list, already keeps them in phone
    order).
    """
    if "_id" in query or "lists" in query or "$or" in query:
        return {}
    return {"hint": PHONE_ORDER}


async def _has_phone_order_index(store: Store) -> bool:
    wanted = dict(PHONE_ORDER)
    async for index in await store.subjects.list_indexes():
        if dict(index["key"]) == wanted:
            return True
    return False


async def stream(
    store: Store,
    query: dict[str, Any],
    *,
    after: str | None,
    lo: str,
    hi: str | None,
    keyring: Keyring,
    notice_id: str,
) -> AsyncIterator[dict[str, Any]]:
    """The audience in ``[lo, hi)`` after ``after``, each subject with its number decrypted
    in ``phone``.

    A number that cannot be decrypted (unknown key id, altered, missing) is logged
    without the number and given as ``phone`` None: batching skips that person.
    """
    hint = phone_order_hint(query)
    if hint and not await _has_phone_order_index(store):
        log.warning("the subjects' phone-hash index is missing; the audience is read unhinted")
        hint = {}
    cursor = (
        store.subjects.find(in_phone_order(query, after, lo, hi), SUBJECT_FIELDS, **hint)
        .sort(PHONE_ORDER)
        .batch_size(1000)
    )
    async for doc in cursor:
        try:
            doc["phone"] = phones.unseal(keyring, doc["_id"], doc.pop("phone_enc", None))
        except Unreadable as exc:
            doc["phone"] = None
            log.error(
                "phone number cannot be decrypted; the person is skipped",
                extra={
                    "notice_id": notice_id,
                    "subject_id": doc["_id"],
                    "reason": exc.reason,
                    "key_id": exc.key_id,
                    "detail": str(exc),
                },
            )
        yield doc
