"""Staff updates in Slack (``--channel slack``): one thread per notice.

``started`` posts the parent message to the incident's channel, ``milestone``
a threaded reply per percent, ``completed`` a threaded summary and an edit of
the parent. Delivery reports still come in after completion: ``reports``
edits the summary and the parent with the newer counts, and ``final`` says
every report is in (or that the wait for the rest is over); after that the
summary no longer changes. Counts are read from the notice's counters when a message is
posted (:func:`alimi.counters.of_notice`), so a late or repeated update never
shows stale numbers.

Each Slack post happens once, even with redelivered messages and concurrent
workers: before posting, a worker claims the post on the notice with a
conditional update (``slack.claims.<post>``), posts, then records the result
and drops the claim. A worker that finds a live claim asks for a retry later
and then sees the recorded result. A claim older than the lease (its worker
died mid-post) can be taken over; in that one case Slack may show a post
twice, which beats never showing it.

The notice's ``slack`` sub-document::

    {"channel": "#incident-response", "ts": "1732845476.000100",   # the parent
     "milestones": [25, 50],                                        # replies posted
     "completed_ts": "1732845490.000300",                           # the summary reply
     "final_counts": {"by_channel": {...}, "fell_back": {...}},     # what it showed
     "parent_final": true,                                          # parent edited
     "summary_final": true,                                         # reports all in
     "claims": {"parent": <datetime>, ...}}                         # posts in flight

Slack's client wrapper is :func:`build_client` plus :meth:`StaffNotifier._call`:
the SDK waits out HTTP 429s (``Retry-After``); a rate limit that outlasts its
retries, a 5xx or a network error becomes :class:`RetryLater`, and an error
Slack will repeat (``channel_not_found``, ``invalid_auth``, ...)
:class:`Unprocessable`.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
from prometheus_client import Counter
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from alimi import counters, partitions
from alimi.bus import RetryLater, Unprocessable
from alimi.counters import NoticeCounts
from alimi.messages import StaffUpdate
from alimi.store import Store
from alimi_delivery import slack_blocks
from alimi_delivery.metrics import PROVIDER_LATENCY
from alimi_delivery.slack_blocks import NoticeView, SlackMessage

log = logging.getLogger("alimi.delivery.slack")

PROVIDER = "slack"

POSTS = Counter(
    "alimi_slack_posts_total",
    "Slack calls for staff updates, by the post they serve and outcome",
    ["stage", "outcome"],
)

# Slack errors that mean "try again later"; any other error is permanent.
RETRYABLE_ERRORS = frozenset(
    {"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"}
)
# Errors of configuration (token, channel) that an operator must fix: logged as such.
CONFIGURATION_ERRORS = frozenset(
    {
        "channel_not_found",
        "invalid_auth",
        "not_authed",
        "account_inactive",
        "token_revoked",
        "not_in_channel",
        "is_archived",
        "missing_scope",
    }
)
CLAIM_LEASE_S = 300.0


def build_client(
    *, base_url: str, token: str, max_rate_limit_retries: int, timeout_s: float
) -> AsyncWebClient:
    """The one Slack client: waits out ``max_rate_limit_retries`` HTTP 429s by ``Retry-After``.

    No session is passed, so the SDK opens and closes one per call: nothing to
    close on shutdown, and staff updates are a handful of calls per notice.
    """
    return AsyncWebClient(
        token=token,
        base_url=base_url,
        timeout=math.ceil(timeout_s),  # the SDK takes whole seconds
        retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=max_rate_limit_retries)],
    )


class StaffNotifier:
    def __init__(
        self,
        store: Store,
        client: AsyncWebClient,
        *,
        default_channel: str,
        claim_lease_s: float = CLAIM_LEASE_S,
    ) -> None:
        self.store = store
        self.client = client
        self.default_channel = default_channel
        self.claim_lease = timedelta(seconds=claim_lease_s)

    async def handle(self, update: StaffUpdate, _message: Any = None) -> None:
        notice = await self.store.notices.find_one({"_id": update.notice_id})
        if notice is None:
            raise Unprocessable(f"notice {update.notice_id} does not exist")
        incident = await self.store.incidents.find_one({"_id": notice["incident_id"]})
        if incident is None:
            raise Unprocessable(
                f"incident {notice['incident_id']} of notice {update.notice_id} does not exist"
            )
        progress = (await partitions.progress_of(self.store, [notice]))[notice["_id"]]
        view = slack_blocks.notice_view(incident, notice, progress.people)
        channel = incident.get("slack_channel") or self.default_channel
        slack = notice.get("slack") or {}
        if update.stage == "started" and slack.get("ts"):
            POSTS.labels("started", "duplicate").inc()
            return
        channel, parent_ts = await self._parent(view, slack, channel)
        if update.stage == "milestone":
            await self._milestone(view, channel, parent_ts, update.percent)
        elif update.stage == "completed":
            await self._completed(view, channel, parent_ts)
        elif update.stage in ("reports", "final"):
            await self._follow_reports(view, channel, parent_ts, final=update.stage == "final")

    async def _parent(
        self, view: NoticeView, slack: dict[str, Any], channel: str
    ) -> tuple[str, str]:
        """The parent message's channel and ts, posting it first if no one has."""
        if slack.get("ts"):
            return slack["channel"], slack["ts"]
        if not await self._claim(view.notice_id, "parent", {"slack.ts": {"$exists": False}}):
            notice = await self._notice(view.notice_id)
            slack = notice.get("slack") or {}
            if slack.get("ts"):
                return slack["channel"], slack["ts"]
            raise RetryLater(f"the parent message of {view.notice_id} is being posted")
        counts = await self._counts(view.notice_id)
        message = slack_blocks.started(view, counts)
        response = await self._released_on_error(
            view.notice_id,
            "parent",
            self._call("started", "chat.postMessage", channel=channel, **_args(message)),
        )
        ts = str(response["ts"])
        await self.store.notices.update_one(
            {"_id": view.notice_id},
            {
                "$set": {"slack.channel": channel, "slack.ts": ts},
                "$unset": {"slack.claims.parent": ""},
            },
        )
        log.info(
            "staff thread started",
            extra={"notice_id": view.notice_id, "incident_id": view.incident_id, "ts": ts},
        )
        return channel, ts

    async def _milestone(
        self, view: NoticeView, channel: str, parent_ts: str, percent: int
    ) -> None:
        slack = (await self._notice(view.notice_id)).get("slack") or {}
        # After the summary, a late milestone would only confuse the thread.
        if percent in slack.get("milestones", []) or slack.get("completed_ts"):
            POSTS.labels("milestone", "duplicate").inc()
            return
        key = f"milestone_{percent}"
        if not await self._claim(view.notice_id, key, {"slack.milestones": {"$ne": percent}}):
            raise RetryLater(f"milestone {percent}% of {view.notice_id} is being posted")
        counts = await self._counts(view.notice_id)
        message = slack_blocks.milestone(view, counts, percent)
        await self._released_on_error(
            view.notice_id,
            key,
            self._call(
                "milestone",
                "chat.postMessage",
                channel=channel,
                thread_ts=parent_ts,
                **_args(message),
            ),
        )
        await self.store.notices.update_one(
            {"_id": view.notice_id},
            {"$addToSet": {"slack.milestones": percent}, "$unset": {f"slack.claims.{key}": ""}},
        )

    async def _completed(self, view: NoticeView, channel: str, parent_ts: str) -> None:
        slack = (await self._notice(view.notice_id)).get("slack") or {}
        if slack.get("completed_ts") and slack.get("parent_final"):
            POSTS.labels("completed", "duplicate").inc()
            return
        if slack.get("completed_ts"):
            # The summary went out but the parent edit did not: edit with the same numbers.
            shown = slack.get("final_counts") or {}
            counts = NoticeCounts(shown.get("by_channel", {}), shown.get("fell_back", {}))
        else:
            no_summary = {"slack.completed_ts": {"$exists": False}}
            if not await self._claim(view.notice_id, "completed", no_summary):
                raise RetryLater(f"the summary of {view.notice_id} is being posted")
            counts = await self._counts(view.notice_id)
            summary = slack_blocks.completed(view, counts)
            response = await self._released_on_error(
                view.notice_id,
                "completed",
                self._call(
                    "completed",
                    "chat.postMessage",
                    channel=channel,
                    thread_ts=parent_ts,
                    **_args(summary),
                ),
            )
            await self.store.notices.update_one(
                {"_id": view.notice_id},
                {
                    "$set": {
                        "slack.completed_ts": str(response["ts"]),
                        "slack.final_counts": {
                            "by_channel": counts.by_channel,
                            "fell_back": counts.fell_back,
                        },
                    },
                    "$unset": {"slack.claims.completed": ""},
                },
            )
            log.info(
                "staff summary posted",
                extra={
                    "notice_id": view.notice_id,
                    "incident_id": view.incident_id,
                    **slack_blocks.summary(counts),
                },
            )
        # chat.update is idempotent: a retry after a failure here just edits again.
        parent = slack_blocks.parent_final(view, counts)
        await self._call("final", "chat.update", channel=channel, ts=parent_ts, **_args(parent))
        await self.store.notices.update_one(
            {"_id": view.notice_id}, {"$set": {"slack.parent_final": True}}
        )

    async def _follow_reports(
        self, view: NoticeView, channel: str, parent_ts: str, *, final: bool
    ) -> None:
        """Edit the summary (and the parent) with the counts now that more delivery reports
        are in; ``final``: say they are all in, or that the wait for the rest is over.

        ``chat.update`` is idempotent, so a repeated update only edits again; once the
        summary says it is final, later updates change nothing.
        """
        slack = (await self._notice(view.notice_id)).get("slack") or {}
        if slack.get("summary_final"):
            POSTS.labels("reports", "duplicate").inc()
            return
        summary_ts = slack.get("completed_ts")
        if not summary_ts:
            # The summary is not posted yet: its own update shows these counts.
            raise RetryLater(f"the summary of {view.notice_id} is not posted yet")
        counts = await self._counts(view.notice_id)
        awaited = slack_blocks.summary(counts)["awaiting_reports"]
        reports = slack_blocks.REPORTS_AWAITED
        if final:
            reports = slack_blocks.REPORTS_IN if not awaited else slack_blocks.REPORTS_CUT_OFF
        stage = "final" if final else "reports"
        message = slack_blocks.completed(view, counts, reports)
        await self._call(stage, "chat.update", channel=channel, ts=summary_ts, **_args(message))
        parent = slack_blocks.parent_final(view, counts)
        await self._call(stage, "chat.update", channel=channel, ts=parent_ts, **_args(parent))
        shown: dict[str, Any] = {
            "slack.final_counts": {"by_channel": counts.by_channel, "fell_back": counts.fell_back}
        }
        if final:
            shown["slack.summary_final"] = True
        await self.store.notices.update_one({"_id": view.notice_id}, {"$set": shown})
        log.info(
            "staff summary brought up to date with delivery reports",
            extra={"notice_id": view.notice_id, "final": final, "awaiting_reports": awaited},
        )

    async def _claim(self, notice_id: str, key: str, not_done: dict[str, Any]) -> bool:
        """Take the right to make post ``key`` of a notice; False if another worker has it."""
        field = f"slack.claims.{key}"
        now = datetime.now(UTC)
        result = await self.store.notices.update_one(
            {
                "_id": notice_id,
                **not_done,
                "$or": [{field: {"$exists": False}}, {field: {"$lt": now - self.claim_lease}}],
            },
            {"$set": {field: now}},
        )
        return result.modified_count == 1

    async def _released_on_error(
        self, notice_id: str, key: str, call: Awaitable[AsyncSlackResponse]
    ) -> AsyncSlackResponse:
        """Await ``call``; if it fails, drop the claim so a retry can post."""
        try:
            return await call
        except Exception:
            await self.store.notices.update_one(
                {"_id": notice_id}, {"$unset": {f"slack.claims.{key}": ""}}
            )
            raise

    async def _notice(self, notice_id: str) -> dict[str, Any]:
        notice = await self.store.notices.find_one({"_id": notice_id})
        if notice is None:
            raise Unprocessable(f"notice {notice_id} does not exist")
        return notice

    async def _counts(self, notice_id: str) -> NoticeCounts:
        return await counters.of_notice(self.store, notice_id)

    async def _call(self, stage: str, method: str, **kwargs: Any) -> AsyncSlackResponse:
        """One Slack call, timed and counted; errors mapped to retry or permanent."""
        api: Callable[..., Awaitable[AsyncSlackResponse]] = {
            "chat.postMessage": self.client.chat_postMessage,
            "chat.update": self.client.chat_update,
        }[method]
        started = time.perf_counter()
        try:
            response = await api(**kwargs)
        except SlackApiError as exc:
            error = str(exc.response.get("error") or "unknown")
            status = exc.response.status_code
            if status == 429 or status >= 500 or error in RETRYABLE_ERRORS:
                POSTS.labels(stage, "retry").inc()
                raise RetryLater(f"slack {method}: {error} (HTTP {status})") from None
            POSTS.labels(stage, "rejected").inc()
            log.error(
                "slack refused a staff update",
                extra={
                    "method": method,
                    "error": error,
                    "configuration": error in CONFIGURATION_ERRORS,
                    "channel": kwargs.get("channel"),
                },
            )
            raise Unprocessable(f"slack {method}: {error}") from None
        except TimeoutError:
            POSTS.labels(stage, "retry").inc()
            raise RetryLater(
                f"slack {method}: no answer within {self.client.timeout} s "
                "(ALIMI_PROVIDER_TIMEOUT_S)"
            ) from None
        except aiohttp.ClientError as exc:
            POSTS.labels(stage, "retry").inc()
            raise RetryLater(f"slack {method}: {type(exc).__name__}: {exc}") from None
        finally:
            PROVIDER_LATENCY.labels(PROVIDER, method).observe(time.perf_counter() - started)
        POSTS.labels(stage, "ok").inc()
        return response


def _args(message: SlackMessage) -> dict[str, Any]:
    args: dict[str, Any] = {"text": message.text, "blocks": message.blocks}
    if message.metadata is not None:
        args["metadata"] = message.metadata
    return args
