"""A provider that fails: a stormy few seconds of 5xx, 429 and timeouts, and one
that is down for good until an operator replays the dead letters.

The faults come from the sandbox's run-time settings (``PUT /_sandbox/config``):
the SMS gateway answers 500, or 429 with ``Retry-After``, or takes the
messages and answers only after the client has given up.
"""

from __future__ import annotations

import asyncio
from collections import Counter

import aiohttp
import pytest
from harness import Run, StartStack, load_people, queue_depth

from alimi import topology
from alimi.store import Store
from support import receipts_of

pytestmark = pytest.mark.chaos

SMS_PROVIDER = "sandbox-sms"
# The storm must end before a batch caught at its very start could reach its
# last retry step: the delays below add up to at least 0.8 * (4 + 8 + 16) = 22.4 s
# after a batch's first failure, and the storm is timed from the breaker opening,
# which follows the first failure by a few milliseconds.
STORM_MAX_S = 16.0
MIXED_S = 4.0
NO_FAULTS = {"error_rate": 0.0, "rate_limit_rate": 0.0, "timeout_rate": 0.0}
# What the SMS client logs for each fault, and the setting that deals it every time.
FAULTS = {
    "http_500": {"error_rate": 1.0},
    "http_429": {"rate_limit_rate": 1.0},
    "timeout": {"timeout_rate": 1.0},
}
STORM = {
    "ALIMI_BATCH_SIZE": "10",  # many small provider calls
    "ALIMI_PREFETCH": "4",
    "ALIMI_PROVIDER_TIMEOUT_S": "1",
    "ALIMI_RETRY_DELAYS_S": "4,8,16",
    "ALIMI_RETRY_JITTER": "0.2",
    "ALIMI_BREAKER_FAILURES": "2",
    "ALIMI_BREAKER_COOLDOWN_S": "1",
    "SANDBOX_LATENCY_MS": "20",
}
# Retries and the breaker's cool-down short: the batches reach the dead letters fast.
DOWN_FOR_GOOD = {"ALIMI_RETRY_DELAYS_S": "0.5,0.5,1", "ALIMI_BREAKER_COOLDOWN_S": "0.5"}


async def test_when_the_provider_storms__then_retries_and_the_breaker_get_everyone_told_once(
    start_stack: StartStack, store: Store, http: aiohttp.ClientSession
) -> None:
    n = 300
    run = Run(start_stack(STORM), store, http)
    people = await load_people(store, n)
    loop = asyncio.get_running_loop()

    def faults_seen() -> Counter[str]:
        failed = run.log_lines("delivery-sms", msg="sms request failed")
        return Counter(str(e["error_code"]) for e in failed)

    # A burst of failures first: the breaker must open.
    await run.sandbox(error_rate=1.0)
    notice = await run.post_notice()

    async def breaker_opened() -> bool:
        metrics = await run.metrics("delivery-sms")
        return metrics.value("alimi_provider_breaker_opened_total", provider=SMS_PROVIDER) >= 1

    await run.until(breaker_opened, "the SMS provider's breaker to open")
    storm_ends = loop.time() + STORM_MAX_S

    # Then the storm proper: a fifth of the calls fail, some are rate limited,
    # some are taken but answered only after the client's timeout.
    await run.sandbox(
        error_rate=0.2, rate_limit_rate=0.2, retry_after_s=1, timeout_rate=0.2, hang_ms=3000
    )
    await asyncio.sleep(MIXED_S)
    # A fault the dice have not dealt yet is dealt on purpose, so each one happens.
    for code, setting in FAULTS.items():
        if faults_seen()[code]:
            continue
        await run.sandbox(**{**NO_FAULTS, **setting})

        async def dealt(code: str = code) -> bool:
            return faults_seen()[code] > 0

        await run.until(dealt, f"a {code} from the provider", within_s=storm_ends - loop.time())
    await run.sandbox(**NO_FAULTS)

    await run.wait_completed(notice)
    await run.assert_each_notified_once(notice, people)

    metrics = await run.metrics("delivery-sms")
    assert metrics.value("alimi_delivery_retries_total", channel="sms") > 0
    assert metrics.value("alimi_provider_breaker_opened_total", provider=SMS_PROVIDER) >= 1
    assert metrics.value("alimi_provider_retry_after_total", provider=SMS_PROVIDER) >= 1
    # Timed-out calls had reached the provider: it was asked, and said it had them.
    assert metrics.value("alimi_delivery_in_doubt_total", channel="sms", answer="found") >= 1
    assert metrics.value("alimi_delivery_dead_lettered_total", channel="sms") == 0
    retried = await store.attempts.count_documents(
        {"notice_id": notice.notice_id, "counts.retrying": {"$gt": 0}}
    )
    assert retried > 0


async def test_when_the_provider_is_down_for_good__then_dead_letters_replayed_later_reach_everyone(
    start_stack: StartStack, store: Store, http: aiohttp.ClientSession, namespace: str
) -> None:
    n = 200
    run = Run(start_stack({**DOWN_FOR_GOOD, "SANDBOX_ERROR_RATE": "1.0"}), store, http)
    people = await load_people(store, n)
    notice = await run.post_notice()

    # Every attempt fails: after the last retry step the notice is over, all failed.
    view = await run.wait_completed(notice)
    assert view["notices"][0]["counts"] == {"failed": n}
    dead_queue = topology.dead_queue(topology.delivery_queue("sms"))
    assert await queue_depth(run.stack.amqp_url, namespace, dead_queue) == n // 100
    gave_up = await receipts_of(store, notice.notice_id)
    assert (
        sum(1 for r in gave_up.values() if r["status"] == "failed" and r.get("dead_lettered")) == n
    )
    metrics = await run.metrics("delivery-sms")
    assert metrics.value("alimi_delivery_dead_lettered_total", channel="sms") == n
    assert metrics.value("alimi_delivery_retries_total", channel="sms", step="3") == n
    assert await run.sms_inbox() == []

    # The provider is back; an operator replays the dead letters.
    await run.sandbox(error_rate=0)
    replayed = await run.notice_action(notice, "dead-letters/replay")
    assert (replayed["batches"], replayed["recipients"]) == (n // 100, n)

    view = await run.wait_completed(notice)
    await run.assert_each_notified_once(notice, people)
    assert view["notices"][0]["counts"] == {"sent": n}
    assert await queue_depth(run.stack.amqp_url, namespace, dead_queue) == 0
