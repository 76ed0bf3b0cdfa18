"""Long work that leaves the request: a job per import, replay, purge or preview.

The request checks what it can check at once (the notice exists, the file's
header is usable, the purge is allowed) and answers ``202`` with the job
document and its URL in ``Location``; the work runs in this intake process
as a task, and the job document in ``jobs`` says where it stands:
``queued`` → ``running`` → ``succeeded`` (with its ``result``) or ``failed``
(with a ``problem``, an RFC 9457 document). ``progress`` holds ``done`` and
``total`` (``null`` when not known in advance) and the kind's own counts.

**One owner, and no job running forever.** The process that runs a job
holds its lease (:mod:`alimi.leases`) and renews it every third of
:data:`LEASE_S` while the work goes on. If the process dies, nobody renews
it: once the lease is over, the job is ``failed`` with the problem type
:data:`ABANDONED` — by the next read of it, or by the sweep each intake runs
every :data:`LEASE_S`. Jobs are failed rather than resumed: each kind is safe
to run again (imports upsert, a replay takes only what is still
dead-lettered, a purge skips the purged, a preview only reads), so the
problem says to run it again, and nothing is done twice behind anyone's back.
A shutdown lets running jobs finish for up to :data:`SHUTDOWN_GRACE_S`, then
fails those it stops in the same way, at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client import Counter

from alimi import ids, leases
from alimi.api_keys import ApiKey
from alimi.problems import BLANK, ProblemError
from alimi.process import cancel_and_wait
from alimi.store import Store

log = logging.getLogger("alimi.intake.jobs")

LEASE_S = 60.0
SHUTDOWN_GRACE_S = 5.0  # well inside the pod's termination grace period
QUEUED, RUNNING, SUCCEEDED, FAILED = "queued", "running", "succeeded", "failed"
UNFINISHED = (QUEUED, RUNNING)
ABANDONED = "urn:alimi:problem:job-abandoned"

FINISHED_JOBS = Counter(
    "alimi_jobs_finished_total",
    "Jobs this process finished, by kind and state (succeeded, failed)",
    ["kind", "state"],
)
ABANDONED_JOBS = Counter(
    "alimi_jobs_abandoned_total",
    "Jobs failed because the process running them stopped renewing their lease",
)


@dataclass(frozen=True)
class Kind:
    """A kind of job: its id prefix, the scope it needs (the operation's own) and its URL."""

    name: str
    prefix: str
    scope: str
    plural: str  # its URL: /v1/<plural>/{<param>}
    param: str

    @property
    def path(self) -> str:
        return f"/v1/{self.plural}/{{{self.param}}}"

    def url(self, job_id: str) -> str:
        return f"/v1/{self.plural}/{job_id}"


IMPORT = Kind("subjects.import", "imp", "subjects:write", "imports", "import_id")
REPLAY = Kind("dead_letters.replay", "rpl", "notices:approve", "replays", "replay_id")
PURGE = Kind("contact_data.purge", "prg", "admin", "purges", "purge_id")
PREVIEW = Kind("notice.preview", "prv", "incidents:read", "previews", "preview_id")
KINDS = {kind.name: kind for kind in (IMPORT, REPLAY, PURGE, PREVIEW)}


def _now() -> datetime:
    return datetime.now(UTC)


def _problem(status: int, title: str, detail: str, *, type_uri: str = BLANK) -> dict[str, Any]:
    return {"type": type_uri, "title": title, "status": status, "detail": detail}


def abandoned(why: str) -> dict[str, Any]:
    return _problem(
        500,
        "Job stopped",
        f"{why} before the job finished; what it wrote stays written, and running it again is safe",
        type_uri=ABANDONED,
    )


LEASE_OVER = abandoned("the intake process running it stopped answering")


class LeaseLost(Exception):
    """Another process declared the job failed: this one must stop working on it."""


class Progress:
    """What the work reports as it goes: written to the job, with the lease renewed."""

    def __init__(self, jobs: Jobs, job_id: str) -> None:
        self._jobs = jobs
        self.job_id = job_id

    async def report(self, done: int, total: int | None = None, **counts: Any) -> None:
        changes = {"progress": {"done": done, "total": total, **counts}, "updated_at": _now()}
        await self._jobs.renew(self.job_id, changes)


Work = Callable[[Progress], Awaitable[dict[str, Any]]]
# Run once the work succeeded, with its result, before the job says so (the audit entry).
Then = Callable[[dict[str, Any]], Awaitable[None]]


def shown(doc: dict[str, Any]) -> dict[str, Any]:
    """The job as the API answers it."""
    kind = KINDS[doc["kind"]]
    answer: dict[str, Any] = {
        "job_id": doc["_id"],
        "kind": doc["kind"],
        "url": kind.url(doc["_id"]),
        "state": doc["state"],
        "target": doc.get("target"),
        "progress": doc.get("progress") or {"done": 0, "total": None},
        "result": doc.get("result"),
        "problem": doc.get("problem"),
    }
    for when in ("created_at", "updated_at", "finished_at"):
        at = doc.get(when)
        answer[when] = at.isoformat() if isinstance(at, datetime) else None
    return answer


class Jobs:
    """The jobs this intake process runs, and the sweep of those nobody runs any more."""

    def __init__(self, store: Store, *, lease_s: float = LEASE_S) -> None:
        self.store = store
        self.lease_s = lease_s
        self.owner = leases.owner_id("intake-jobs")
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(
        self,
        kind: Kind,
        *,
        key: ApiKey,
        target: str,
        work: Work,
        then: Then | None = None,
        total: int | None = None,
        job_id: str | None = None,
    ) -> dict[str, Any]:
        """Store the job (``queued``, its lease held here) and start its work; the job.

        Its id is ``job_id`` if given (an import's is the import's), else a new one.
        """
        job_id = job_id or ids.new_id(kind.prefix)
        now = _now()
        doc = {
            "_id": job_id,
            "kind": kind.name,
            "state": QUEUED,
            "target": target,
            "key_id": key.key_id,
            "progress": {"done": 0, "total": total},
            "result": None,
            "problem": None,
            "created_at": now,
            "updated_at": now,
            "finished_at": None,
            "lease": {
                "owner": self.owner,
                "until": now + timedelta(seconds=self.lease_s),
                "taken_at": now,
            },
        }
        await self.store.jobs.insert_one(doc)
        task = asyncio.create_task(self._run(kind, job_id, work, then), name=f"job-{job_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return shown(doc)

    async def find(self, kind: Kind, job_id: str) -> dict[str, Any] | None:
        """The job of ``kind`` with that id (failed first if its lease is over); None if none."""
        await self._settle({"_id": job_id})
        found = await self.store.jobs.find_one({"_id": job_id, "kind": kind.name})
        return None if found is None else shown(found)

    async def running(self, kind: Kind, target: str) -> str | None:
        """The id of an unfinished job of ``kind`` on ``target``, if one holds a live lease."""
        await self._settle({"kind": kind.name, "target": target})
        found = await self.store.jobs.find_one(
            {"kind": kind.name, "target": target, "state": {"$in": list(UNFINISHED)}}, {"_id": 1}
        )
        return None if found is None else str(found["_id"])

    async def renew(self, job_id: str, changes: dict[str, Any] | None = None) -> None:
        if not await leases.renew(
            self.store.jobs, job_id, self.owner, self.lease_s, changes=changes
        ):
            raise LeaseLost(job_id)

    async def sweep(self) -> int:
        """Fail every job whose owner's lease is over; how many."""
        return await self._settle({})

    async def _settle(self, where: dict[str, Any]) -> int:
        now = _now()
        done = await self.store.jobs.update_many(
            {**where, "state": {"$in": list(UNFINISHED)}, "lease.until": {"$lt": now}},
            {
                "$set": {
                    "state": FAILED,
                    "problem": LEASE_OVER,
                    "finished_at": now,
                    "updated_at": now,
                    "lease": leases.free(),
                }
            },
        )
        if done.modified_count:
            ABANDONED_JOBS.inc(done.modified_count)
            log.warning(
                "jobs abandoned by their process failed", extra={"count": done.modified_count}
            )
        return done.modified_count

    async def _run(self, kind: Kind, job_id: str, work: Work, then: Then | None) -> None:
        heartbeat = asyncio.create_task(self._heartbeat(job_id), name=f"job-{job_id}-lease")
        try:
            await self.renew(job_id, {"state": RUNNING, "updated_at": _now()})
            result = await work(Progress(self, job_id))
            if then is not None:
                await then(result)
            heartbeat.cancel()
            await self._finish(kind, job_id, SUCCEEDED, result=result)
        except LeaseLost:
            log.warning("job taken from this process; stopped", extra={"job_id": job_id})
        except ProblemError as exc:
            problem = _problem(exc.status, exc.title, exc.detail, type_uri=exc.type_uri)
            if exc.errors:
                problem["errors"] = exc.errors
            await self._finish(kind, job_id, FAILED, problem=problem)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await self._finish(
                    kind, job_id, FAILED, problem=abandoned("the intake process shut down")
                )
            raise
        except Exception as exc:
            log.exception("job failed", extra={"job_id": job_id})
            detail = f"the job stopped: {type(exc).__name__}; what it wrote stays written,"
            await self._finish(
                kind,
                job_id,
                FAILED,
                problem=_problem(500, "Job failed", detail + " and running it again is safe"),
            )
        finally:
            await cancel_and_wait([heartbeat])  # a lone cancel can be lost under timeoutMS

    async def _heartbeat(self, job_id: str) -> None:
        """Keep the lease while the work runs; once lost, the work's next report stops it."""
        while True:
            await asyncio.sleep(self.lease_s / 3)
            try:
                await self.renew(job_id)
            except LeaseLost:
                return
            except Exception:
                log.warning("job lease not renewed; will retry", extra={"job_id": job_id})

    async def _finish(
        self,
        kind: Kind,
        job_id: str,
        state: str,
        *,
        result: dict[str, Any] | None = None,
        problem: dict[str, Any] | None = None,
    ) -> None:
        now = _now()
        changes = {
            "state": state,
            "result": result,
            "problem": problem,
            "finished_at": now,
            "updated_at": now,
        }
        if await leases.release(self.store.jobs, job_id, self.owner, changes=changes):
            FINISHED_JOBS.labels(kind.name, state).inc()

    async def run(self) -> None:
        """The sweep, every lease period, until cancelled."""
        while True:
            try:
                await self.sweep()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("job sweep failed; will retry")
            await asyncio.sleep(self.lease_s)

    async def close(self, *, grace_s: float = SHUTDOWN_GRACE_S) -> None:
        """Let the jobs this process runs finish for up to ``grace_s``, then stop the rest
        (each is failed, saying the process shut down)."""
        tasks = list(self._tasks)
        if tasks and grace_s > 0:
            await asyncio.wait(tasks, timeout=grace_s)
        await cancel_and_wait(tasks)
