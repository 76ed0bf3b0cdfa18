"""HTTP views of the receipts service: verify, validate, keep the reports, answer 202."""

from __future__ import annotations

import logging

from aiohttp import web
from pydantic import ValidationError
from pymongo.errors import PyMongoError

from alimi import problems
from alimi import report_signature as signature
from alimi.problems import ProblemError
from alimi_receipts import inbox, metrics
from alimi_receipts.context import CONTEXT
from alimi_receipts.models import CHANNELS, ReportBatch

log = logging.getLogger("alimi.receipts")

routes = web.RouteTableDef()

RETRY_AFTER_S = 1


@routes.post(f"/v1/reports/{{channel:{'|'.join(CHANNELS)}}}")
async def receive_reports(request: web.Request) -> web.Response:
    channel = request.match_info["channel"]
    ctx = request.app[CONTEXT]
    raw = await request.read()
    try:
        signature.verify(
            ctx.settings.report_secret.get_secret_value().encode(),
            timestamp=request.headers.get(signature.TIMESTAMP_HEADER),
            signature=request.headers.get(signature.SIGNATURE_HEADER),
            body=raw,
            max_skew_s=ctx.settings.report_max_skew_s,
        )
    except signature.SignatureError as exc:
        metrics.REPORTS.labels(channel, metrics.REJECTED_SIGNATURE).inc()
        log.warning("delivery report refused", extra={"channel": channel, "reason": str(exc)})
        raise ProblemError(401, "Unauthorized", str(exc)) from None
    try:
        batch = ReportBatch.model_validate(await problems.read_json(request))
    except ProblemError:
        metrics.REPORTS.labels(channel, metrics.INVALID).inc()
        raise
    except ValidationError as exc:
        metrics.REPORTS.labels(channel, metrics.INVALID).inc()
        raise problems.from_validation_error(exc) from None
    try:
        inbox_id = await inbox.take_in(
            ctx.store, channel, batch.reports, apply_after_s=ctx.settings.apply_after_s
        )
    except PyMongoError as exc:
        metrics.REPORTS.labels(channel, metrics.UNAVAILABLE).inc()
        log.error(
            "delivery reports could not be stored",
            extra={"channel": channel, "count": len(batch.reports), "error": type(exc).__name__},
        )
        answer = problems.response(
            503,
            "Service Unavailable",
            "the reports could not be stored (the database did not answer); nothing was kept;"
            " send the request again later",
        )
        answer.headers["Retry-After"] = str(RETRY_AFTER_S)
        return answer
    metrics.REPORTS.labels(channel, metrics.RECEIVED).inc(len(batch.reports))
    return web.json_response({"received": len(batch.reports), "inbox_id": inbox_id}, status=202)
