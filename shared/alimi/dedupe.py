"""People who share a phone number get one message: an audience in runs of one number.

An audience read sorted by phone hash has everyone sharing a number side by
side, so one pass that holds a single run at a time dedupes it in constant
memory. The segmenter batches these runs (one recipient each, the rest
*merged* into that message) and intake's preview counts them: both read the
audience through :func:`by_number`, so a preview counts the people a notice
will merge the way sending merges them.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from typing import Any


async def by_number(subjects: AsyncIterable[dict[str, Any]]) -> AsyncIterator[list[dict[str, Any]]]:
    """The runs of ``subjects`` (sorted by ``phone_hash``) that share a phone hash, in
    order. People without a number (``phone_hash`` None) share nothing: each is a run
    of their own."""
    run: list[dict[str, Any]] = []
    async for doc in subjects:
        if run and (doc.get("phone_hash") is None or doc["phone_hash"] != run[0]["phone_hash"]):
            yield run
            run = []
        run.append(doc)
    if run:
        yield run
