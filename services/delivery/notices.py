"""A small cache of notice messages: one MongoDB read per notice, not per batch."""

from __future__ import annotations

import time

from alimi.store import Store
from alimi_delivery.compose import NoticeMessage

TTL_S = 30.0
MAX_ENTRIES = 1000


class NoticeMessages:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._cache: dict[str, tuple[float, NoticeMessage]] = {}

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
