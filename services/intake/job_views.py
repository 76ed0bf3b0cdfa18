"""HTTP views of jobs: the 202 that starts one, and the URL that says where it stands.

Each kind of job has its own URL (``/v1/imports/{id}``, ``/v1/replays/{id}``,
``/v1/purges/{id}``, ``/v1/previews/{id}``) so that reading a job needs the
scope of the operation that started it, declared on the route like any
other (:mod:`alimi_intake.access`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from alimi.problems import ProblemError
from alimi_intake import jobs
from alimi_intake.access import KEY, requires
from alimi_intake.context import CONTEXT

routes = web.RouteTableDef()


async def start(
    request: web.Request,
    kind: jobs.Kind,
    *,
    target: str,
    work: jobs.Work,
    then: jobs.Then | None = None,
    **more: Any,
) -> web.Response:
    """Start a job for the request's key; 202: the job document, its URL in ``Location``."""
    job = await request.app[CONTEXT].jobs.start(
        kind, key=request[KEY], target=target, work=work, then=then, **more
    )
    return web.json_response(job, status=202, headers={"Location": job["url"]})


def _reader(kind: jobs.Kind) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handler(request: web.Request) -> web.Response:
        found = await request.app[CONTEXT].jobs.find(kind, request.match_info[kind.param])
        if found is None:
            raise ProblemError(404, "Not Found", f"no {kind.plural[:-1]} with that id")
        return web.json_response(found)

    handler.__name__ = f"get_{kind.plural[:-1]}"
    handler.__doc__ = f"A {kind.name} job: its state, progress, and result or problem."
    return requires(kind.scope)(handler)


for _kind in jobs.KINDS.values():
    routes.get(_kind.path)(_reader(_kind))
