"""The receipts process: start-up, readiness and shutdown."""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from pathlib import Path

import aiohttp
import pytest
from pydantic import SecretStr

from alimi.store import Store
from alimi_devstack import Stack, free_port
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


KUBERNETES_GRACE_S = 30  # terminationGracePeriodSeconds of k8s/base/receipts.yaml


def test_when_sigterm_comes_with_a_request_in_flight__then_it_exits_within_its_grace_period(
    tmp_path: Path, mongo_url: str, amqp_url: str, namespace: str
) -> None:
    stack = Stack(workdir=tmp_path, namespace=namespace, amqp_url=amqp_url, mongo_url=mongo_url)
    stack.mongo_db = namespace
    proc = stack.start_service(
        "receipts",
        ["alimi_receipts"],
        env={"ALIMI_HTTP_PORT": str(stack.receipts_port), "ALIMI_SHUTDOWN_TIMEOUT_S": "2"},
    )
    try:
        # A webhook whose body never finishes arriving: its handler waits for the rest.
        with socket.create_connection(("127.0.0.1", stack.receipts_port)) as held:
            held.sendall(
                b"POST /v1/reports/sms HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b'Content-Length: 1000\r\n\r\n{"reports": ['
            )
            time.sleep(0.5)
            started = time.monotonic()
            proc.signal(signal.SIGTERM)
            try:
                exit_code = proc.popen.wait(KUBERNETES_GRACE_S)
            except subprocess.TimeoutExpired:
                pytest.fail(f"receipts still running {KUBERNETES_GRACE_S} s after SIGTERM")
            print(f"receipts exited {time.monotonic() - started:.1f} s after SIGTERM")
        assert exit_code == 0
        assert "Traceback" not in (tmp_path / "receipts.log").read_text()
    finally:
        stack.stop_all()
