"""A small cache of notice messages: one MongoDB read per notice, not per batch."""

from __future__ import annotations

import time

from alimi import states
from alimi.store import Store
from alimi_delivery.provider_message import NoticeMessage

TTL_S = 30.0
STATE_TTL_S = 1.0  # a halt takes effect within about this long
MAX_ENTRIES = 1000


class NoticeMessages:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._cache: dict[str, tuple[float, NoticeMessage]] = {}
        self._states: dict[str, tuple[float, str | None]] = {}

    async def halted(self, notice_id: str) -> bool:
        """Is the notice halted? A state that lets batches go is read at most once a second
        per notice; ``halted`` is read again for every batch, so a batch of a notice resumed
        a moment ago is sent, not halted by a state a second old (its people would have
        stayed halted for good)."""
        now = time.monotonic()
        hit = self._states.get(notice_id)
        if hit is None or now - hit[0] >= STATE_TTL_S or hit[1] == states.NOTICE_HALTED:
            found = await self.store.notices.find_one({"_id": notice_id}, {"state": 1})
            hit = (now, found.get("state") if found else None)
            if len(self._states) >= MAX_ENTRIES:
                self._states.clear()
            self._states[notice_id] = hit
        return hit[1] == states.NOTICE_HALTED

    async def get(self, notice_id: str) -> NoticeMessage | None:
        now = time.monotonic()
        hit = self._cache.get(notice_id)
        if hit is not None and now - hit[0] < TTL_S:
            return hit[1]
        notice = await self.store.notices.find_one(
            {"_id": notice_id},
            {
                "body": 1,
                "title": 1,
                "incident_id": 1,
                "template": 1,
                "locale": 1,
                "texts": 1,
                "approved_at": 1,
            },
        )
        if notice is None:
            return None
        incident = (
            await self.store.incidents.find_one(
                {"_id": notice["incident_id"]}, {"title": 1, "status_url": 1, "contact": 1}
            )
            or {}
        )
        message = NoticeMessage.build(notice, incident)
        if len(self._cache) >= MAX_ENTRIES:
            self._cache.clear()
        self._cache[notice_id] = (now, message)
        return message
