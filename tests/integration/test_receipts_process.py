"""The receipts process: start-up, readiness and shutdown."""

from __future__ import annotations

import aiohttp
from pydantic import SecretStr

from alimi.store import Store
from alimi_devstack import free_port
from alimi_receipts.app import ReceiptsProcess
from alimi_receipts.settings import ReceiptsSettings


async def test_when_the_process_starts__then_it_indexes_its_collections_and_reports_ready(
    mongo_url: str, namespace: str, store: Store
) -> None:
    http_port, ops_port = free_port(), free_port()
    settings = ReceiptsSettings(
        namespace=namespace,
        mongo_url=SecretStr(mongo_url),
        mongo_db=namespace,
        http_host="127.0.0.1",
        http_port=http_port,
        ops_host="127.0.0.1",
        ops_port=ops_port,
    )
    process = ReceiptsProcess(settings)
    await process.start()
    try:
        ops = f"http://127.0.0.1:{ops_port}"
        api = f"http://127.0.0.1:{http_port}"
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{ops}/readyz") as resp:
                assert resp.status == 200
                assert await resp.json() == {"ready": True, "checks": {"mongodb": True}}
            async with http.get(f"{ops}/metrics") as resp:
                text = await resp.text()
                assert 'alimi_reports_total{channel="kakao",outcome="waiting"}' in text
            async with http.post(f"{api}/v1/reports/sms", data=b"{}") as resp:
                assert resp.status == 401
        assert "due_at" in await store.report_inbox.index_information()
        assert "requests" in await store.attempts.index_information()
    finally:
        await process.stop()
