"""A partition of a notice's audience, streamed in phone-hash order, numbers decrypted.

Phone numbers are stored encrypted; they are decrypted here, one subject at a
time as the audience streams by, and leave only inside delivery batches (the
broker is inside the trust boundary: the provider needs the number).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

from alimi import phone as phones
from alimi.audience import AudienceSpec, matcher, to_query
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


def reading(
    spec: AudienceSpec, after: str | None, lo: str = "", hi: str | None = None
) -> tuple[dict[str, Any], dict[str, int], Callable[[Mapping[str, Any]], bool] | None]:
    """How a partition of ``spec``'s audience is read: (filter, projection, and the
    predicate the segmenter applies itself, if any).

    An audience given by a filter alone (tags, attributes) is read as its range of
    the directory through the phone-hash index, and the segmenter selects the
    audience from it (:func:`alimi.audience.matcher`). A partition is a range of
    the directory either way, so the database reads each range once, in order,
    whatever its planner makes of tags: the development server answers a filter on
    the range *and* the tags with a scan of the whole collection and a sort in
    memory, so a notice of N people in N / 50,000 partitions read N²/50,000
    documents (20 full scans at a million). The cost: an audience far narrower
    than the directory has the rest of its range read and dropped. Ids and lists
    keep their own indexes and their filter on the server.
    """
    if spec.filter is not None and not spec.subject_ids and spec.list_id is None:
        bounds = in_phone_order({}, after, lo, hi)
        return bounds, {**SUBJECT_FIELDS, "tags": 1, "attributes": 1}, matcher(spec.filter)
    return in_phone_order(to_query(spec), after, lo, hi), SUBJECT_FIELDS, None


async def stream(
    store: Store,
    spec: AudienceSpec,
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
    query, fields, selects = reading(spec, after, lo, hi)
    cursor = store.subjects.find(query, fields).sort(PHONE_ORDER).batch_size(1000)
    async for doc in cursor:
        if selects is not None:
            if not selects(doc):
                continue
            doc.pop("tags", None)
            doc.pop("attributes", None)
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
