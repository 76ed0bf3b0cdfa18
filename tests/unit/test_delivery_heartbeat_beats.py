"""The heartbeat's own bookkeeping: what a beat names as abandoned, and how many beats
handlers waiting together cause. The database is a stand-in recording the updates."""

from __future__ import annotations

import asyncio
from typing import Any

from alimi_delivery.heartbeat import Heartbeat


class Beats:
    """A stand-in for ``store.heartbeats``: records each update, and can run ``during``
    while one is being written."""

    def __init__(self) -> None:
        self.updates: list[dict[str, Any]] = []
        self.during: Any = None

    async def update_one(self, _filter: Any, update: dict[str, Any], upsert: bool) -> None:
        self.updates.append(update)
        await asyncio.sleep(0.01)
        if self.during is not None:
            self.during()
            self.during = None


class Store:
    def __init__(self) -> None:
        self.heartbeats = Beats()


def _heartbeat() -> tuple[Heartbeat, Beats]:
    store = Store()
    return Heartbeat(store, "delivery-sms", every_s=2, call_s=10), store.heartbeats  # type: ignore[arg-type]


def _named(update: dict[str, Any]) -> list[str]:
    return list(update.get("$push", {}).get("abandoned", {}).get("$each", []))


async def test_when_an_attempt_is_abandoned_mid_beat__then_the_next_beat_names_it() -> None:
    heartbeat, beats = _heartbeat()
    heartbeat.abandon("a1")
    beats.during = lambda: heartbeat.abandon("a2")
    assert await heartbeat.beat()
    assert await heartbeat.beat()
    assert await heartbeat.beat()
    assert [_named(u) for u in beats.updates] == [["a1"], ["a2"], []]


async def test_when_handlers_wait_for_a_beat_together__then_one_beat_is_written() -> None:
    heartbeat, beats = _heartbeat()
    assert all(await asyncio.gather(*(heartbeat.confirmed() for _ in range(8))))
    assert len(beats.updates) == 1
    assert heartbeat.covers_a_call()
