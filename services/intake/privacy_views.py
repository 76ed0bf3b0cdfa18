"""HTTP views of personal-data protection: the purge of contact data after retention (a job)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from alimi.problems import ProblemError
from alimi_intake import audit, job_views, jobs, privacy
from alimi_intake.access import KEY, requires
from alimi_intake.context import CONTEXT
from alimi_intake.jobs import Progress

routes = web.RouteTableDef()


@routes.post("/v1/incidents/{incident_id}/purge-contact-data")
@requires("admin")  # irreversible: the people's numbers and names are gone for good
async def purge_contact_data(request: web.Request) -> web.Response:
    """404 and 409 at once (checked again by the job); 202: a job purges."""
    ctx = request.app[CONTEXT]
    incident_id = request.match_info["incident_id"]
    retention_days = ctx.settings.contact_retention_days
    try:
        await privacy.check_purge(ctx.store, incident_id, retention_days=retention_days)
    except privacy.IncidentNotFound:
        raise ProblemError(404, "Not Found", "no incident with that id") from None
    except privacy.PurgeRefused as exc:
        raise _retained(exc) from None
    running = await ctx.jobs.running(jobs.PURGE, incident_id)
    if running is not None:
        raise ProblemError(
            409, "Conflict", f"this incident is being purged: job {jobs.PURGE.url(running)}"
        )
    key = request[KEY]

    async def work(progress: Progress) -> dict[str, Any]:
        async def counted(so_far: privacy.Purged) -> None:
            await progress.report(so_far.subjects_purged)

        try:
            purged = await privacy.purge_contact_data(
                ctx.store,
                ctx.bus,
                incident_id,
                retention_days=retention_days,
                after_chunk=counted,
            )
        except privacy.PurgeRefused as exc:
            raise _retained(exc) from None
        return purged.as_json()

    async def audited(result: dict[str, Any]) -> None:
        details = {k: v for k, v in result.items() if k != "incident_id"}
        await audit.record(ctx.store, key, "contact_data.purged", incident_id, details)

    return await job_views.start(request, jobs.PURGE, target=incident_id, work=work, then=audited)


def _retained(exc: privacy.PurgeRefused) -> ProblemError:
    return ProblemError(409, "Contact data still retained", str(exc))
