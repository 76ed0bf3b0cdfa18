"""Delivery's cache of notices: what it may serve a second old, and what never."""

from __future__ import annotations

from alimi import states
from alimi.store import Store
from alimi_delivery.notice_cache import NoticeMessages


async def _set_state(store: Store, state: str) -> None:
    await store.notices.update_one({"_id": "ntc_1"}, {"$set": {"state": state}})


async def test_when_a_notice_is_halted__then_a_batch_may_still_go_within_the_second(
    store: Store,
) -> None:
    await store.notices.insert_one({"_id": "ntc_1", "state": states.NOTICE_SENDING})
    cache = NoticeMessages(store)
    assert not await cache.halted("ntc_1")

    await _set_state(store, states.NOTICE_HALTED)
    assert not await cache.halted("ntc_1")  # read a moment ago: the halt lands within 1 s


async def test_when_a_halted_notice_is_resumed__then_its_next_batch_is_not_halted(
    store: Store,
) -> None:
    await store.notices.insert_one({"_id": "ntc_1", "state": states.NOTICE_HALTED})
    cache = NoticeMessages(store)
    assert await cache.halted("ntc_1")

    await _set_state(store, states.NOTICE_APPROVED)
    # Within the second the halt was read in: the resumed notice's batch goes out.
    assert not await cache.halted("ntc_1")
