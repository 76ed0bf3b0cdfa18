"""HTTP views of personal-data protection: the purge of contact data after retention."""

from __future__ import annotations

from aiohttp import web

from alimi.problems import ProblemError
from alimi_intake import audit, privacy
from alimi_intake.access import KEY, requires
from alimi_intake.context import CONTEXT

routes = web.RouteTableDef()


@routes.post("/v1/incidents/{incident_id}/purge-contact-data")
@requires("admin")  # irreversible: the people's numbers and names are gone for good
async def purge_contact_data(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    incident_id = request.match_info["incident_id"]
    try:
        purged = await privacy.purge_contact_data(
            ctx.store, ctx.bus, incident_id, retention_days=ctx.settings.contact_retention_days
        )
    except privacy.IncidentNotFound:
        raise ProblemError(404, "Not Found", "no incident with that id") from None
    except privacy.PurgeRefused as exc:
        raise ProblemError(409, "Contact data still retained", str(exc)) from None
    answer = purged.as_json()
    await audit.record(
        ctx.store,
        request[KEY],
        "contact_data.purged",
        incident_id,
        {k: v for k, v in answer.items() if k != "incident_id"},
    )
    return web.json_response(answer)
