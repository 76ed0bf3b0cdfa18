"""HTTP views of the receipts service: verify, validate, call the service, answer."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from aiohttp import web
from pydantic import ValidationError

from alimi import problems
from alimi.problems import ProblemError
from alimi_receipts import metrics, service, signature
from alimi_receipts.context import CONTEXT, Context
from alimi_receipts.models import CHANNELS, Report, ReportBatch

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
        outcomes = await _apply_in_turn(ctx, channel, batch.reports)
    except _Busy:
        return _retry_later(
            503,
            "Busy",
            f"{ctx.settings.apply_concurrency} report requests are being applied and this one"
            f" waited {ctx.settings.apply_wait_s:g} s for its turn; nothing was applied;"
            " send the request again later",
        )
    # Reports ahead of their receipts: delivery records `sent` right after the
    # provider's answer, so a short wait (its turn given up meanwhile) usually
    # applies them here rather than having the provider send the whole request again.
    for _ in range(ctx.settings.not_ready_retries):
        if not outcomes.not_ready:
            break
        await asyncio.sleep(ctx.settings.not_ready_wait_s)
        try:
            again = await _apply_in_turn(
                ctx, channel, outcomes.waiting, report_id=outcomes.report_id
            )
        except _Busy:
            break
        outcomes = outcomes.then(again)
    if outcomes.not_ready:
        return _retry_later(
            503,
            "Receipts not ready",
            f"{outcomes.not_ready} of {len(batch.reports)} reports are for receipts not yet"
            " recorded as sent; the others were applied; send the request again later",
        )
    return web.json_response(
        {
            "accepted": outcomes.accepted,
            "unknown": outcomes.unknown,
            "duplicates": outcomes.duplicates,
        }
    )


class _Busy(Exception):
    """Every turn stayed taken for as long as a request may wait."""


async def _apply_in_turn(
    ctx: Context, channel: str, reports: Sequence[Report], *, report_id: str | None = None
) -> service.Outcomes:
    """Apply ``reports`` once a turn is free; :class:`_Busy` after ``apply_wait_s``."""
    try:
        async with asyncio.timeout(ctx.settings.apply_wait_s):
            await ctx.turns.acquire()
    except TimeoutError:
        metrics.REPORTS.labels(channel, metrics.BUSY).inc()
        raise _Busy from None
    try:
        return await service.apply_reports(
            ctx.store, channel=channel, reports=reports, report_id=report_id
        )
    finally:
        ctx.turns.release()


def _retry_later(status: int, title: str, detail: str) -> web.Response:
    answer = problems.response(status, title, detail)
    answer.headers["Retry-After"] = str(RETRY_AFTER_S)
    return answer
