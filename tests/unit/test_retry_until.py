"""Start-up waits for dependencies, except for what waiting cannot fix; shutdown cancels
what is left until it has ended."""

from __future__ import annotations

import asyncio

import pytest

from alimi.process import StartupFailed, cancel_and_wait, retry_until
from alimi.topology import TopologyMismatch


async def test_when_a_dependency_fails_then_answers__then_start_up_goes_on() -> None:
    calls = 0

    async def attempt() -> None:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise ConnectionRefusedError("not yet")

    await retry_until("rabbitmq", attempt, timeout_s=10)
    assert calls == 3


async def test_when_the_queues_have_another_type__then_start_up_fails_at_once_naming_it() -> None:
    calls = 0

    async def attempt() -> None:
        nonlocal calls
        calls += 1
        raise TopologyMismatch("queue t.delivery.sms exists with other arguments")

    with pytest.raises(StartupFailed, match=r"rabbitmq: queue t\.delivery\.sms"):
        await retry_until("rabbitmq", attempt, timeout_s=60)
    assert calls == 1  # not retried


async def test_when_a_task_swallows_a_cancellation__then_cancel_and_wait_cancels_it_again() -> None:
    # What Python 3.11's asyncio.wait_for does when the cancellation arrives as the
    # awaited call completes (PyMongo's writes, once timeoutMS is set).
    rounds = 0

    async def loop_that_loses_one_cancel() -> None:
        nonlocal rounds
        while True:
            rounds += 1
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                if rounds == 1:
                    continue
                raise

    task = asyncio.create_task(loop_that_loses_one_cancel())
    await asyncio.sleep(0)
    await asyncio.wait_for(cancel_and_wait([task]), 5)
    assert task.cancelled() and rounds == 2
