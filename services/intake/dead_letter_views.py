"""HTTP views of a notice's dead letters: who was given up on, and their replay (a job)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from alimi.problems import ProblemError
from alimi_intake import audit, dead_letters, job_views, jobs, repository
from alimi_intake.access import KEY, requires
from alimi_intake.context import CONTEXT
from alimi_intake.jobs import Progress

routes = web.RouteTableDef()


async def _notice(request: web.Request, notice_id: str) -> dict[str, Any]:
    notice = await repository.find_notice(
        request.app[CONTEXT].store, notice_id, ["state", "incident_id"]
    )
    if notice is None:
        raise ProblemError(404, "Not Found", "no notice with that id")
    return notice


@routes.get("/v1/notices/{notice_id}/dead-letters")
@requires("incidents:read")
async def list_dead_letters(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    notice_id = request.match_info["notice_id"]
    notice = await _notice(request, notice_id)
    found = await dead_letters.pending(ctx.store, notice_id)
    return web.json_response(
        {
            "notice_id": notice_id,
            "incident_id": notice["incident_id"],
            "state": notice["state"],
            **found,
        }
    )


@routes.post("/v1/notices/{notice_id}/dead-letters/replay")
@requires("notices:approve")
async def replay_dead_letters(request: web.Request) -> web.Response:
    """202: a job takes the notice's batches off the dead-letter queues and sends them."""
    ctx = request.app[CONTEXT]
    notice_id = request.match_info["notice_id"]
    await _notice(request, notice_id)
    running = await ctx.jobs.running(jobs.REPLAY, notice_id)
    if running is not None or await dead_letters.busy(ctx.store, notice_id):
        where = f" (job {jobs.REPLAY.url(running)})" if running else ""
        raise ProblemError(409, "Conflict", str(dead_letters.Busy(notice_id)) + where)
    key = request[KEY]

    async def work(progress: Progress) -> dict[str, Any]:
        async def counted(so_far: dead_letters.Replayed) -> None:
            await progress.report(so_far.recipients, batches=so_far.batches)

        try:
            replayed = await dead_letters.replay(ctx.store, ctx.bus, notice_id, after_batch=counted)
        except dead_letters.Busy as exc:
            raise ProblemError(409, "Conflict", str(exc)) from None
        return {
            "notice_id": notice_id,
            "batches": replayed.batches,
            "recipients": replayed.recipients,
            "recipients_by_channel": replayed.channels,
            "more_remain": replayed.more_remain,
        }

    async def audited(result: dict[str, Any]) -> None:
        counts = {"batches": result["batches"], "recipients": result["recipients"]}
        await audit.record(ctx.store, key, "dead_letters.replayed", notice_id, counts)

    return await job_views.start(request, jobs.REPLAY, target=notice_id, work=work, then=audited)
