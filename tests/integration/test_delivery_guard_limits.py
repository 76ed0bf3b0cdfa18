"""The guard's edge cases through the real delivery path: a batch bigger than one second's
budget, and a half-open breaker whose trial call never answers. Real MongoDB-wire
server, real RabbitMQ, the sandbox over HTTP."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import datetime

import aiohttp
from aiohttp.test_utils import TestServer

from alimi.bus import Bus
from alimi.store import Store
from alimi_delivery.guard import HALF_OPEN
from support import Deliveries, sms_batch

WINDOW_S = 0.9  # a little under a second: the requests' own latency moves arrivals a bit


def _most_within(arrivals: list[tuple[float, int]], window_s: float) -> tuple[int, int]:
    """(requests, recipients) in the busiest ``window_s`` of ``arrivals`` (time, recipients)."""
    most_requests = most_recipients = 0
    for i, (start, _) in enumerate(arrivals):
        inside = [n for t, n in arrivals[i:] if t - start < window_s]
        most_requests = max(most_requests, len(inside))
        most_recipients = max(most_recipients, sum(inside))
    return most_requests, most_recipients


async def test_when_a_batch_exceeds_one_seconds_budget__then_no_second_at_the_provider_does(
    store: Store, http: aiohttp.ClientSession, sandbox: TestServer, deliveries: Deliveries
) -> None:
    await deliveries.seed_notice()
    delivery = deliveries.sms(requests_per_s=2, recipients_per_s=20)
    await delivery.handle(sms_batch(50, seq=0))
    await delivery.handle(sms_batch(15, first=50, seq=50))

    inbox = await deliveries.inbox()
    assert len(inbox) == 65
    per_request = Counter(m["request_id"] for m in inbox)
    received = {m["request_id"]: m["received_at"] for m in inbox}
    arrivals = sorted(
        (datetime.fromisoformat(received[r]).timestamp(), n) for r, n in per_request.items()
    )
    requests, recipients = _most_within(arrivals, WINDOW_S)
    start = arrivals[0][0]
    print(
        "requests at the provider (s after the first, recipients):",
        [(round(t - start, 2), n) for t, n in arrivals],
    )
    assert max(per_request.values()) <= 20, per_request
    assert recipients <= 20, arrivals
    assert requests <= 2, arrivals


async def test_when_the_half_open_trial_is_cancelled_mid_call__then_a_later_batch_is_the_trial(
    store: Store,
    http: aiohttp.ClientSession,
    sandbox: TestServer,
    bus: Bus,
    deliveries: Deliveries,
) -> None:
    await deliveries.seed_notice()
    await deliveries.configure(error_rate=1.0)
    delivery = deliveries.sms(breaker_failures=1, breaker_cooldown_s=0.2)
    await delivery.handle(sms_batch(1, seq=0))  # the breaker opens
    await store.receipts.delete_many({})
    await asyncio.sleep(0.3)

    # The trial call is under way when its handler is cancelled (a shutdown past its
    # grace period, say): it raises between the breaker's allow() and observe().
    await deliveries.configure(error_rate=0.0, latency_ms=2000)
    trial = asyncio.create_task(delivery.handle(sms_batch(1, first=1, seq=1)))
    await asyncio.sleep(0.3)  # the request is out: the sandbox holds its answer for 2 s
    assert delivery.guard.breaker.state == HALF_OPEN and delivery.guard.breaker.trial_in_flight
    trial.cancel()
    await asyncio.gather(trial, return_exceptions=True)

    await deliveries.configure(latency_ms=0)
    await delivery.handle(sms_batch(1, first=2, seq=2))
    receipts = await deliveries.receipts()
    assert receipts["s2"]["status"] == "sent", receipts["s2"]
    assert [m["grouping_key"] for m in await deliveries.inbox()][-1] == "ntc_1:s2"
