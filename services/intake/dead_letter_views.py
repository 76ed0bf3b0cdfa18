"""HTTP view of a notice's dead letters: who was given up on, before replaying them."""

from __future__ import annotations

from aiohttp import web

from alimi.problems import ProblemError
from alimi_intake import dead_letters, repository
from alimi_intake.access import requires
from alimi_intake.context import CONTEXT

routes = web.RouteTableDef()


@routes.get("/v1/notices/{notice_id}/dead-letters")
@requires("incidents:read")
async def list_dead_letters(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    notice_id = request.match_info["notice_id"]
    notice = await repository.find_notice(ctx.store, notice_id, ["state", "incident_id"])
    if notice is None:
        raise ProblemError(404, "Not Found", "no notice with that id")
    found = await dead_letters.pending(ctx.store, notice_id)
    return web.json_response(
        {
            "notice_id": notice_id,
            "incident_id": notice["incident_id"],
            "state": notice["state"],
            **found,
        }
    )
