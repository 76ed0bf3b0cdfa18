"""N people in the subject directory, written straight into MongoDB.

Each document has the shape intake stores (``alimi_intake.service.subject_document``
plus the ``created_at``/``updated_at`` its repository adds): the phone number
encrypted with the same keyring (``ALIMI_PHONE_KEYS``, else the development
key, as the stack's services use), its keyed lookup hash (``ALIMI_PHONE_HASH_KEY``,
else the development one) and its masked form, all through :mod:`alimi.phone`.
Going around the HTTP API is deliberate: importing a million people through
intake is a benchmark of its own (``make bench-import``); this one measures
what happens after approval.

The documents are inserted first and the subjects' indexes (the ones intake
creates at start-up) built after: on the MongoDB-wire server that is about
twice as fast as inserting into indexed collections.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from alimi import phone as phones
from alimi.settings import PhoneKeySettings, load
from alimi.store import SUBJECTS, Store

TAG = "bench-breach"
CHUNK = 2000
WRITERS = 2


def number(i: int) -> str:
    """A distinct, valid Korean mobile number for person ``i`` (up to 10 million)."""
    return f"+8210{2000 + i // 10_000:04d}{i % 10_000:04d}"


def documents(start: int, stop: int) -> Iterator[dict[str, Any]]:
    settings = load(PhoneKeySettings, os.environ)
    keyring = settings.phone_keyring
    hash_key = settings.phone_hash_key.get_secret_value().encode()
    now = datetime.now(UTC)
    for i in range(start, stop):
        subject_id = f"bench-{i:08d}"
        e164 = number(i)
        yield {
            "_id": subject_id,
            "name": f"고객{i}",
            "locale": "ko",
            "tags": [TAG],
            "attributes": {},
            "phone_enc": phones.seal(keyring, subject_id, e164),
            "phone_hash": phones.lookup_hash(e164, hash_key),
            "phone_masked": phones.mask(e164),
            "channels": None,
            "kakao_reachable": None,
            "created_at": now,
            "updated_at": now,
        }


async def seed(store: Store, n: int) -> dict[str, Any]:
    """Insert ``n`` people tagged :data:`TAG`, then build the subjects' indexes."""
    started = time.perf_counter()
    pending: set[asyncio.Task[Any]] = set()
    for start in range(0, n, CHUNK):
        docs = list(documents(start, min(n, start + CHUNK)))
        while len(pending) >= WRITERS:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()
        pending.add(asyncio.create_task(store.subjects.insert_many(docs, ordered=False)))
    for task in pending:
        await task
    inserted_s = time.perf_counter() - started
    await store.ensure_indexes(SUBJECTS)
    total_s = time.perf_counter() - started
    return {
        "how": "insert_many straight into MongoDB (intake's document shape, phones encrypted "
        "with alimi.phone), then the subjects' indexes",
        "subjects": n,
        "insert_s": round(inserted_s, 1),
        "index_s": round(total_s - inserted_s, 1),
        "seconds": round(total_s, 1),
    }
