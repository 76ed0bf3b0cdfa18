"""A small cache of notice templates: one MongoDB read per notice, not per batch."""

from __future__ import annotations

import time

from alimi.store import Store
from alimi_delivery.compose import NoticeTemplate

TTL_S = 30.0
MAX_ENTRIES = 1000


class NoticeTemplates:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._cache: dict[str, tuple[float, NoticeTemplate]] = {}

    async def get(self, notice_id: str) -> NoticeTemplate | None:
        now = time.monotonic()
        hit = self._cache.get(notice_id)
        if hit is not None and now - hit[0] < TTL_S:
            return hit[1]
        notice = await self.store.notices.find_one(
            {"_id": notice_id}, {"body": 1, "title": 1, "incident_id": 1}
        )
        if notice is None:
            return None
        incident = (
            await self.store.incidents.find_one(
                {"_id": notice["incident_id"]}, {"title": 1, "status_url": 1, "contact": 1}
            )
            or {}
        )
        template = NoticeTemplate.build(
            body=notice["body"], title=notice.get("title", ""), incident=incident
        )
        if len(self._cache) >= MAX_ENTRIES:
            self._cache.clear()
        self._cache[notice_id] = (now, template)
        return template
