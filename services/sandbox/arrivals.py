"""Waiting for messages: a listing that answers once enough of them have come.

A record (an inbox, the Slack workspace) calls :meth:`Arrivals.recorded` each
time it keeps a message; :meth:`Arrivals.until` sleeps until then, checks its
condition again, and gives up at its timeout. Nothing polls: a waiter costs
one future while it waits. On shutdown :meth:`Arrivals.close` wakes every
waiter at once, so no listing holds the server's stop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class Arrivals:
    """Wakes whoever waits for messages each time a message is recorded."""

    def __init__(self) -> None:
        self._waiters: set[asyncio.Future[None]] = set()
        self._closed = False

    @property
    def waiting(self) -> int:
        """How many listings wait at this moment."""
        return len(self._waiters)

    def recorded(self) -> None:
        """A message was kept: every waiter checks its condition again."""
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._waiters.clear()

    def close(self) -> None:
        """Wake every waiter now and let none wait from here on (the server is stopping)."""
        self._closed = True
        self.recorded()

    async def until(self, enough: Callable[[], bool], timeout_s: float) -> bool:
        """Wait until ``enough()`` holds, at most ``timeout_s``; return whether it does.

        ``enough`` is checked at once, then after each recorded message.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while not enough():
            left = deadline - loop.time()
            if left <= 0 or self._closed:
                return False
            waiter: asyncio.Future[None] = loop.create_future()
            self._waiters.add(waiter)
            try:
                await asyncio.wait_for(waiter, left)
            except TimeoutError:
                return enough()
            finally:
                self._waiters.discard(waiter)
        return True
