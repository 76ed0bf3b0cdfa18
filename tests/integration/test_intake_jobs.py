"""Jobs: long work answered 202 with its URL, read until it is finished; a job whose
process stopped is failed, never left running; against the real MongoDB-wire server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import REGISTRY

from alimi import api_keys, ids, leases
from alimi.api_keys import ApiKey
from alimi.bus import Bus
from alimi.problems import ProblemError
from alimi.store import Store
from alimi_intake import dead_letters, jobs
from alimi_intake.app import init_app
from alimi_intake.context import CONTEXT
from alimi_intake.jobs import Jobs, Progress
from alimi_intake.settings import IntakeSettings
from support import follow_job

CSV = {"Content-Type": "text/csv"}
KEY = ApiKey(key_id="k1", name="test", scopes=frozenset({"admin"}))


@pytest.fixture
async def client(
    intake_settings: Callable[..., IntakeSettings], store: Store, bus: Bus
) -> AsyncIterator[TestClient[Any, Any]]:
    token, _ = await api_keys.create(store, name="operator", scopes=["subjects:write"])
    async with TestClient(
        TestServer(init_app(intake_settings())), headers={"Authorization": f"Bearer {token}"}
    ) as c:
        yield c


def _jobs(client: TestClient[Any, Any]) -> Jobs:
    return client.server.app[CONTEXT].jobs


async def _job(store: Store, job_id: str) -> dict[str, Any]:
    found = await store.jobs.find_one({"_id": job_id})
    assert found is not None
    return found


async def test_when_a_file_is_imported__then_202_names_the_job_and_its_url_says_when_it_is_done(
    client: TestClient[Any, Any], store: Store
) -> None:
    body = "external_id,phone\nc1,010-1234-5678\nc2,12-34\nc3,\n"
    succeeded = ("alimi_jobs_finished_total", {"kind": "subjects.import", "state": "succeeded"})
    before = _sample(succeeded[0], **succeeded[1])

    answer = await client.post("/v1/subjects/import", data=body, headers=CSV)

    assert answer.status == 202, await answer.text()
    started = await answer.json()
    assert answer.headers["Location"] == f"/v1/imports/{started['job_id']}" == started["url"]
    assert started["state"] in ("queued", "running", "succeeded")
    assert started["progress"]["total"] == 2  # the rows staged to apply
    job = await follow_job(client, answer)
    assert job["state"] == "succeeded" and job["problem"] is None
    assert job["finished_at"] is not None
    result = job["result"]
    assert (result["import_id"], result["imported"], result["rejected"]) == (job["job_id"], 2, 1)
    assert job["progress"]["done"] == job["progress"]["total"] == 2
    assert sorted(await store.subjects.distinct("_id")) == ["c1", "c3"]
    stored = await _job(store, job["job_id"])
    assert stored["lease"]["owner"] is None  # given back when it finished
    assert _sample(succeeded[0], **succeeded[1]) == before + 1


async def test_when_a_key_without_the_import_scope_reads_an_import__then_403(
    client: TestClient[Any, Any], store: Store
) -> None:
    answer = await client.post("/v1/subjects/import", data="external_id\nc1\n", headers=CSV)
    job = await follow_job(client, answer)
    reader, _ = await api_keys.create(store, name="reader", scopes=["incidents:read"])
    resp = await client.get(job["url"], headers={"Authorization": f"Bearer {reader}"})
    assert resp.status == 403 and resp.content_type == "application/problem+json"
    unknown = await client.get(f"/v1/imports/{ids.new_id('imp')}")
    assert unknown.status == 404 and unknown.content_type == "application/problem+json"


async def test_when_the_process_running_a_job_dies__then_the_job_is_failed_once_its_lease_is_over(
    client: TestClient[Any, Any], store: Store
) -> None:
    """A process that died stops renewing its lease: the job is failed, not left running."""
    long_ago = datetime.now(UTC) - timedelta(minutes=5)
    job_id = ids.new_id("imp")
    await store.jobs.insert_one(
        {
            "_id": job_id,
            "kind": jobs.IMPORT.name,
            "state": "running",
            "target": job_id,
            "progress": {"done": 1000, "total": 5000},
            "created_at": long_ago,
            "updated_at": long_ago,
            "lease": {"owner": "intake@gone:1#abc", "until": long_ago + timedelta(seconds=60)},
        }
    )
    live_id = ids.new_id("imp")
    await store.jobs.insert_one(
        {
            "_id": live_id,
            "kind": jobs.IMPORT.name,
            "state": "running",
            "target": live_id,
            "created_at": long_ago,
            "updated_at": long_ago,
            "lease": {
                "owner": "intake@busy:2#def",
                "until": datetime.now(UTC) + timedelta(hours=1),
            },
        }
    )

    resp = await client.get(f"/v1/imports/{job_id}")

    found = await resp.json()
    assert (found["state"], found["progress"]["done"]) == ("failed", 1000)
    assert found["problem"]["type"] == jobs.ABANDONED
    assert found["problem"]["status"] == 500
    assert "running it again is safe" in found["problem"]["detail"]
    assert (await _job(store, job_id))["state"] == "failed"
    live = await (await client.get(f"/v1/imports/{live_id}")).json()
    assert live["state"] == "running"  # its owner still renews it: not taken from it


def _sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_the_sweep_fails_every_job_whose_lease_is_over_and_no_other(store: Store) -> None:
    abandoned_before = _sample("alimi_jobs_abandoned_total")
    now = datetime.now(UTC)
    for job_id, state, until in (
        ("imp_over", "running", now - timedelta(seconds=1)),
        ("imp_queued", "queued", now - timedelta(seconds=1)),
        ("imp_live", "running", now + timedelta(minutes=1)),
        ("imp_done", "succeeded", now - timedelta(hours=1)),
    ):
        await store.jobs.insert_one(
            {"_id": job_id, "kind": jobs.IMPORT.name, "state": state, "lease": {"until": until}}
        )

    assert await Jobs(store).sweep() == 2
    assert _sample("alimi_jobs_abandoned_total") == abandoned_before + 2

    states = {d["_id"]: d["state"] async for d in store.jobs.find({})}
    assert states == {
        "imp_over": "failed",
        "imp_queued": "failed",
        "imp_live": "running",
        "imp_done": "succeeded",
    }


async def test_when_the_work_is_refused__then_the_job_fails_with_the_problem_document(
    client: TestClient[Any, Any], store: Store
) -> None:
    async def refused(progress: Progress) -> dict[str, Any]:
        await progress.report(1, 3)
        raise ProblemError(
            409, "Conflict", "busy", errors=[{"field": "notice_id", "message": "busy"}]
        )

    async def broken(progress: Progress) -> dict[str, Any]:
        raise RuntimeError("secret detail that must not be shown")

    for work in (refused, broken):
        job = await _jobs(client).start(
            jobs.IMPORT, job_id=ids.new_id("imp"), key=KEY, target="x", work=work
        )
        found = await _finished(client, job["url"])
        assert found["state"] == "failed" and found["result"] is None
        problem = found["problem"]
        if work is refused:
            assert (problem["status"], problem["title"], problem["detail"]) == (
                409,
                "Conflict",
                "busy",
            )
            assert problem["errors"] == [{"field": "notice_id", "message": "busy"}]
            assert found["progress"] == {"done": 1, "total": 3}
        else:
            assert (problem["status"], problem["title"]) == (500, "Job failed")
            assert "RuntimeError" in problem["detail"] and "secret" not in problem["detail"]


async def test_when_the_intake_shuts_down__then_its_running_jobs_are_failed_saying_so(
    store: Store,
) -> None:
    runner = Jobs(store)
    started = asyncio.Event()

    async def endless(progress: Progress) -> dict[str, Any]:
        await progress.report(5)
        started.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    job = await runner.start(jobs.IMPORT, job_id="imp_stop", key=KEY, target="x", work=endless)
    await started.wait()
    assert (await _job(store, job["job_id"]))["state"] == "running"

    await runner.close(grace_s=0)

    stopped = await _job(store, "imp_stop")
    assert stopped["state"] == "failed" and stopped["problem"]["type"] == jobs.ABANDONED
    assert "shut down" in stopped["problem"]["detail"]
    assert stopped["progress"] == {"done": 5, "total": None}


async def test_when_a_job_was_failed_by_another_process__then_its_work_stops_and_it_stays_failed(
    store: Store,
) -> None:
    runner = Jobs(store)
    go_on = asyncio.Event()
    reports: list[int] = []

    async def slow(progress: Progress) -> dict[str, Any]:
        await go_on.wait()
        for done in range(1, 4):
            await progress.report(done)
            reports.append(done)
        return {"finished": True}

    job = await runner.start(jobs.IMPORT, job_id="imp_taken", key=KEY, target="x", work=slow)
    # Another intake's sweep saw the lease over (this process looked dead to it).
    await store.jobs.update_one(
        {"_id": job["job_id"]},
        {"$set": {"state": "failed", "lease": {"owner": None, "until": datetime.now(UTC)}}},
    )
    go_on.set()
    await runner.close(grace_s=60)  # the work ends by itself at its first report

    taken = await _job(store, "imp_taken")
    assert taken["state"] == "failed" and taken.get("result") is None
    assert reports == []


async def _finished(client: TestClient[Any, Any], url: str) -> dict[str, Any]:
    for _ in range(3000):
        found: dict[str, Any] = await (await client.get(url)).json()
        if found["state"] in ("succeeded", "failed"):
            return found
        await asyncio.sleep(0.01)
    raise AssertionError(f"{url} never finished")


async def test_when_a_replay_of_the_notice_is_running__then_another_is_refused_naming_its_job(
    intake_settings: Callable[..., IntakeSettings], store: Store, bus: Bus
) -> None:
    approver, _ = await api_keys.create(store, name="approver", scopes=["notices:approve"])
    await store.notices.insert_one({"_id": "ntc_x", "incident_id": "inc_1", "state": "completed"})
    until = datetime.now(UTC) + timedelta(minutes=1)
    await store.jobs.insert_one(
        {
            "_id": "rpl_running",
            "kind": jobs.REPLAY.name,
            "state": "running",
            "target": "ntc_x",
            "lease": {"owner": "intake@other:1#abc", "until": until},
        }
    )
    async with TestClient(
        TestServer(init_app(intake_settings())), headers={"Authorization": f"Bearer {approver}"}
    ) as c:
        resp = await c.post("/v1/notices/ntc_x/dead-letters/replay")
        assert resp.status == 409 and resp.content_type == "application/problem+json"
        assert "/v1/replays/rpl_running" in (await resp.json())["detail"]
        assert (await (await c.get("/v1/replays/rpl_running")).json())["state"] == "running"
    assert await store.jobs.count_documents({}) == 1


async def test_when_a_discard_takes_the_notice_after_a_replay_was_accepted__then_the_job_fails_409(
    intake_settings: Callable[..., IntakeSettings],
    store: Store,
    bus: Bus,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The request's check passed (a purge's discard took the lease just after it):
    the job meets the lease and fails with the same problem the request would give."""
    approver, _ = await api_keys.create(store, name="approver", scopes=["notices:approve"])
    await store.notices.insert_one({"_id": "ntc_x", "incident_id": "inc_1", "state": "completed"})
    purging = leases.Named(store, dead_letters.lease_name("ntc_x"), "a-purge", ttl_s=60)
    assert await purging.acquire()

    async def free_when_checked(store: Store, notice_id: str) -> bool:
        return False

    monkeypatch.setattr(dead_letters, "busy", free_when_checked)
    headers = {"Authorization": f"Bearer {approver}"}
    async with TestClient(TestServer(init_app(intake_settings())), headers=headers) as c:
        job = await follow_job(c, await c.post("/v1/notices/ntc_x/dead-letters/replay"))

    assert job["state"] == "failed" and job["result"] is None
    assert (job["problem"]["status"], job["problem"]["title"]) == (409, "Conflict")
    assert "being replayed or discarded" in job["problem"]["detail"]
    assert await store.audit.count_documents({"action": "dead_letters.replayed"}) == 0


async def test_when_a_preview_names_no_notice__then_404_at_once_and_no_job(
    client: TestClient[Any, Any], store: Store
) -> None:
    reader, _ = await api_keys.create(store, name="reader", scopes=["incidents:read"])
    resp = await client.post(
        f"/v1/notices/{ids.new_id('ntc')}/preview", headers={"Authorization": f"Bearer {reader}"}
    )
    assert resp.status == 404 and resp.content_type == "application/problem+json"
    assert await store.jobs.count_documents({}) == 0
