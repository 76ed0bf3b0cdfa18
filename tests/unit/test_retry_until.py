"""Start-up waits for dependencies, except for what waiting cannot fix."""

from __future__ import annotations

import pytest

from alimi.process import StartupFailed, retry_until
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
