"""Waiting for messages: woken by each one recorded, never by polling; bounded; closed on stop."""

import asyncio

from alimi_sandbox.arrivals import Arrivals


class Counter:
    """A condition that holds once ``need`` messages came, counting how often it is asked."""

    def __init__(self, need: int) -> None:
        self.need = need
        self.messages = 0
        self.asked = 0

    def __call__(self) -> bool:
        self.asked += 1
        return self.messages >= self.need


async def _settle() -> None:
    for _ in range(10):
        await asyncio.sleep(0)


async def test_when_the_condition_already_holds__then_it_returns_at_once() -> None:
    assert await Arrivals().until(lambda: True, timeout_s=0) is True


async def test_when_messages_are_recorded__then_the_condition_is_checked_only_then() -> None:
    arrivals, enough = Arrivals(), Counter(need=2)
    waiting = asyncio.create_task(arrivals.until(enough, timeout_s=300))
    await _settle()
    assert (enough.asked, arrivals.waiting, waiting.done()) == (1, 1, False)

    enough.messages = 1
    arrivals.recorded()
    await _settle()
    assert (enough.asked, waiting.done()) == (2, False)

    enough.messages = 2
    arrivals.recorded()
    assert await waiting is True
    assert enough.asked == 3 and arrivals.waiting == 0


async def test_when_nothing_comes_in_time__then_it_returns_false() -> None:
    arrivals = Arrivals()
    assert await arrivals.until(lambda: False, timeout_s=0.01) is False
    assert arrivals.waiting == 0


async def test_when_closed__then_every_waiter_returns_and_no_new_one_waits() -> None:
    arrivals = Arrivals()
    waiters = [asyncio.create_task(arrivals.until(lambda: False, timeout_s=300)) for _ in range(3)]
    await _settle()

    arrivals.close()

    assert await asyncio.gather(*waiters) == [False] * 3
    assert await arrivals.until(lambda: False, timeout_s=300) is False


async def test_when_a_waiting_listing_is_cancelled__then_it_leaves_no_waiter_behind() -> None:
    arrivals = Arrivals()
    waiting = asyncio.create_task(arrivals.until(lambda: False, timeout_s=300))
    await _settle()

    waiting.cancel()
    await asyncio.gather(waiting, return_exceptions=True)

    assert arrivals.waiting == 0
