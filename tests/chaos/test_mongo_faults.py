"""MongoDB failing under the services: write errors injected by the server, and
a restart of the server in the middle of a notice.

Write errors come from SecantusDB's ``failCommand`` fail point (the server runs
with test commands on), aimed at the services' connections alone by their
``appName``, so the test's own reads are left alone. The restart is a real
one: the stack's own SecantusDB stops and starts again on the same port and
storage path.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest
from harness import Run, StartStack, fail_point, load_people

from alimi.store import Store
from support import statuses_of

pytestmark = pytest.mark.chaos

STEADY_PROVIDER = {
    "SANDBOX_LATENCY_MS": "50",
    "SANDBOX_LATENCY_JITTER_MS": "50",
    "ALIMI_PREFETCH": "2",
    "ALIMI_PROVIDER_TIMEOUT_S": "2",
    "ALIMI_RETRY_DELAYS_S": "0.5,1,2",
}
# The restart scenario: operations time out (and say so) before the server is back.
RESTARTED = {**STEADY_PROVIDER, "ALIMI_BATCH_SIZE": "10", "ALIMI_MONGO_TIMEOUT_MS": "5000"}
FAIL_POINT_MESSAGE = "Failing command via 'failCommand' failpoint"
SERVICES = ("intake", "segmenter", "delivery-sms", "delivery-kakao", "delivery-slack")


@pytest.fixture
async def fail_point_url(mongo_url: str) -> AsyncIterator[str]:
    """The shared server's URL, to set a fail point on; it is switched off afterwards."""
    yield mongo_url
    await fail_point(mongo_url, "off")


async def test_when_mongodb_refuses_writes_mid_notice__then_nothing_is_lost_or_doubled(
    start_stack: StartStack,
    store: Store,
    http: aiohttp.ClientSession,
    namespace: str,
    fail_point_url: str,
) -> None:
    n = 400
    failures = 20
    app_name = f"alimi-{namespace}"
    run = Run(start_stack(STEADY_PROVIDER, mongo_app_name=app_name), store, http)
    people = await load_people(store, n)
    notice = await run.post_notice()

    async def under_way() -> bool:
        return await run.sent_by() >= n // 5

    await run.until(under_way, "a fifth of the people told")
    # The next 20 writes of the services fail: claims, outcomes, checkpoints.
    # InternalError is not retryable, so PyMongo hands every one to the service.
    await fail_point(
        fail_point_url,
        {"times": failures},
        {"failCommands": ["insert", "update"], "errorCode": 1, "appName": app_name},
    )
    await run.assert_under_way(notice, "writes began to fail")

    def hits() -> int:
        """Failed writes the services met: each is one error line with the server's words."""
        lines = (line for name in SERVICES for line in run.log(name).splitlines())
        return sum(1 for line in lines if FAIL_POINT_MESSAGE in line)

    async def all_hit() -> bool:
        return hits() >= failures

    await run.until(all_hit, f"the services to meet {failures} failed writes")
    await run.wait_completed(notice)
    await run.assert_each_notified_once(notice, people)
    assert hits() == failures
    # Delivery met some of them, and put its batch back rather than lose it.
    assert FAIL_POINT_MESSAGE in run.log("delivery-sms")
    metrics = await run.metrics("delivery-sms")
    requeued = metrics.value(
        "alimi_bus_messages_consumed_total", queue="delivery.sms", outcome="requeued"
    )
    assert requeued >= 1


async def test_when_mongodb_restarts_mid_notice__then_nothing_is_lost_or_doubled(
    start_stack: StartStack, http: aiohttp.ClientSession, namespace: str
) -> None:
    n = 500
    # Batches of ten, two in flight: sending takes seconds, so the restart lands in it.
    stack = start_stack(RESTARTED, own_mongo=True)
    assert stack.mongo_url is not None
    store = Store(stack.mongo_url, namespace)
    try:
        run = Run(stack, store, http)
        people = await load_people(store, n)
        notice = await run.post_notice()

        async def under_way() -> bool:
            return await run.sent_by() >= n // 5

        await run.until(under_way, "a fifth of the people told")
        sent_before = {
            s
            for s, status in (await statuses_of(store, notice.notice_id)).items()
            if status in ("sent", "delivered")
        }
        await run.assert_under_way(notice, "the database stopped")
        assert await run.sent_by() < n, "everyone was sent to before the database stopped"
        old_server = stack.mongo_process
        assert old_server is not None
        assert stack.stop_mongo() == 0
        # Down for longer than the services' operation timeout (5 s here; PyMongo
        # waits that long for a server): their reads and writes fail, and they say so.
        await asyncio.sleep(6)

        async def not_ready() -> bool:
            async with http.get(f"{stack.processes['delivery-sms'].ops_url}/readyz") as resp:
                return resp.status == 503 and (await resp.json())["checks"]["mongodb"] is False

        assert await not_ready(), "delivery still ready with its database down"
        stack.restart_mongo()
        assert stack.mongo_process is not old_server and stack.mongo_process is not None
        assert stack.mongo_process.running

        await run.wait_completed(notice)
        await run.assert_each_notified_once(notice, people)
        sent_after = {
            s
            for s, status in (await statuses_of(store, notice.notice_id)).items()
            if status in ("sent", "delivered")
        }
        assert sent_before <= sent_after, "receipts written before the restart were lost"
        assert all(proc.running for proc in stack.processes.values())
        # The services met the outage (the segmenter streaming the audience, at least)
        # and came back by themselves.
        met = [
            name
            for name in ("segmenter", "delivery-sms", "receipts")
            if "ServerSelectionTimeoutError" in run.log(name) or "AutoReconnect" in run.log(name)
        ]
        assert met, "no service met the database being down"
    finally:
        await store.close()
