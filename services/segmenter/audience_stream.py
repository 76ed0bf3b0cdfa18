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
    cursor = (
        store.subjects.find(in_phone_order(query, after, lo, hi), SUBJECT_FIELDS)
        .sort([("phone_hash", 1), ("_id", 1)])
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
