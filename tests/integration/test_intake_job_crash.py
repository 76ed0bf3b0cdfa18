"""A real intake process killed (``kill -9``) while its import job runs: once started
again, the job reads ``failed`` — never ``running`` for good — and importing again
finishes the work. The intake runs as its own process, with a one-second job lease."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from alimi.store import Store
from alimi_devstack import Stack
from alimi_intake import jobs

ROWS = 4000  # four chunks: the kill comes after the first, seconds before the last


@pytest.fixture
def stack_env() -> dict[str, str]:
    return {"ALIMI_JOB_LEASE_S": "1"}


async def _upload(http: aiohttp.ClientSession, stack: Stack, body: str) -> str:
    """POST the CSV file; its job's URL."""
    async with http.post(
        f"{stack.intake_url}/v1/subjects/import",
        data=body.encode(),
        headers={"Content-Type": "text/csv"},
    ) as resp:
        assert resp.status == 202, await resp.text()
        return resp.headers["Location"]


async def _read(http: aiohttp.ClientSession, stack: Stack, url: str) -> dict[str, Any]:
    async with http.get(f"{stack.intake_url}{url}") as resp:
        assert resp.status == 200, await resp.text()
        found: dict[str, Any] = await resp.json()
        return found


async def _until(
    http: aiohttp.ClientSession, stack: Stack, url: str, done: Any, reads: int = 6000
) -> dict[str, Any]:
    """The job once ``done(job)`` holds, read at most ``reads`` times."""
    for _ in range(reads):
        job = await _read(http, stack, url)
        if done(job):
            return job
        await asyncio.sleep(0.01)
    raise AssertionError(f"{url}: never as awaited; last {job}")


async def test_when_intake_is_killed_during_an_import__then_its_job_is_failed_not_left_running(
    intake: Stack, store: Store
) -> None:
    body = "external_id,phone\n" + "".join(
        f"k{i:05d},010-3{i // 10000:03d}-{i % 10000:04d}\n" for i in range(ROWS)
    )
    auth = {"Authorization": f"Bearer {intake.api_key('operator')}"}
    async with aiohttp.ClientSession(headers=auth) as http:
        url = await _upload(http, intake, body)
        # The first chunk applied, the others not yet: kill it now.
        under_way = await _until(http, intake, url, lambda job: job["progress"]["done"] >= 1000)
        assert under_way["state"] == "running", under_way
        intake.kill("intake")
        intake.start_again("intake")

        failed = await _until(http, intake, url, lambda job: job["state"] not in jobs.UNFINISHED)

        assert failed["state"] == "failed", failed
        assert failed["problem"]["type"] == jobs.ABANDONED
        assert failed["progress"]["done"] < ROWS
        written = await store.subjects.count_documents({})
        assert failed["progress"]["done"] <= written < ROWS

        # What it wrote stays written; importing the file again finishes the work.
        again = await _upload(http, intake, body)
        done = await _until(http, intake, again, lambda job: job["state"] not in jobs.UNFINISHED)
    assert done["state"] == "succeeded", done
    assert done["result"]["imported"] == ROWS and done["result"]["rejected"] == 0
    assert await store.subjects.count_documents({}) == ROWS
