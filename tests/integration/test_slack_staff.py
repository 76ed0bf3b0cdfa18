"""Staff updates in Slack against the real MongoDB-wire server and the sandbox Slack API."""

from __future__ import annotations

import asyncio
import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from slack_sdk.web.async_client import AsyncWebClient

from alimi import counters
from alimi.bus import RetryLater, Unprocessable
from alimi.messages import StaffStage, StaffUpdate
from alimi.store import Store
from alimi_delivery.slack_staff import StaffNotifier, build_client
from alimi_sandbox.app import init_app
from alimi_sandbox.behaviour import Behaviour
from alimi_sandbox.config import SandboxConfig
from support import seed_receipts

TOKEN = "xoxb-sandbox-token"
DEFAULT_CHANNEL = "#incident-response"


def _client(sandbox: TestServer, *, token: str = TOKEN, retries: int = 2) -> AsyncWebClient:
    return build_client(
        base_url=str(sandbox.make_url("/slack/api/")),
        token=token,
        max_rate_limit_retries=retries,
        timeout_s=5,
    )


def _notifier(store: Store, sandbox: TestServer, **kw: Any) -> StaffNotifier:
    default_channel = kw.pop("default_channel", DEFAULT_CHANNEL)
    lease = kw.pop("claim_lease_s", 300.0)
    return StaffNotifier(
        store, _client(sandbox, **kw), default_channel=default_channel, claim_lease_s=lease
    )


async def _seed(
    store: Store, notice_id: str = "ntc_s1", incident_id: str = "inc_s1", **incident: Any
) -> None:
    await store.incidents.insert_one(
        {
            "_id": incident_id,
            "title": "Member database exposed",
            "severity": "high",
            "status_url": "https://status.example.kr/i/1",
            "discovered_at": datetime(2025, 11, 20, 9, 0, tzinfo=UTC),
            **incident,
        }
    )
    await store.notices.insert_one(
        {
            "_id": notice_id,
            "incident_id": incident_id,
            "seq": 1,
            "title": "Notice",
            "body": "#{name}님 안내",
            "state": "sending",
            "progress": {"recipients_published": 8, "skipped_no_phone": 2},
        }
    )


async def _receipts(store: Store, notice_id: str, rows: list[tuple[str, str, str | None]]) -> None:
    """(channel, status, fallback_from) per person."""
    taken = await store.receipts.count_documents({"notice_id": notice_id})
    await seed_receipts(
        store,
        notice_id,
        [
            {
                "subject_id": f"subj{taken + i}",
                "channel": None if channel == "none" else channel,
                "status": status,
                **({"fallback_from": fallback} if fallback else {}),
            }
            for i, (channel, status, fallback) in enumerate(rows)
        ],
        incident_id="inc_s1",
    )


def _update(stage: StaffStage, percent: int = 0, notice_id: str = "ntc_s1") -> StaffUpdate:
    return StaffUpdate(notice_id=notice_id, incident_id="inc_s1", stage=stage, percent=percent)


async def _messages(
    http: aiohttp.ClientSession, sandbox: TestServer, **query: str
) -> list[dict[str, Any]]:
    async with http.get(sandbox.make_url("/_sandbox/slack/messages"), params=query) as resp:
        return (await resp.json())["messages"]


async def _rate_limit(http: aiohttp.ClientSession, sandbox: TestServer, **body: int) -> int:
    url = sandbox.make_url("/_sandbox/slack/rate_limit")
    if body:
        async with http.put(url, json=body) as resp:
            assert resp.status == 200, await resp.text()
    async with http.get(url) as resp:
        return int((await resp.json())["count"])


async def _slack_doc(store: Store, notice_id: str = "ntc_s1") -> dict[str, Any]:
    notice = await store.notices.find_one({"_id": notice_id})
    assert notice is not None
    return notice.get("slack") or {}


async def test_when_a_notice_starts__then_one_parent_is_posted_to_the_default_channel(
    store: Store, http: aiohttp.ClientSession, sandbox: TestServer
) -> None:
    await _seed(store)
    await _notifier(store, sandbox).handle(_update("started"))

    [parent] = await _messages(http, sandbox)
    assert parent["channel"] == DEFAULT_CHANNEL and parent["thread_ts"] is None
    assert parent["blocks"][0]["text"]["text"] == "Member database exposed"
    fields = {f["text"] for f in parent["blocks"][1]["fields"]}
    assert {"*Severity*\nhigh", "*Notice*\n#1 (first notice)", "*People*\n10"} <= fields
    assert "https://status.example.kr/i/1" in parent["text"]
    slack = await _slack_doc(store)
    assert (slack["channel"], slack["ts"]) == (DEFAULT_CHANNEL, parent["ts"])
    assert slack.get("claims", {}) == {}


async def test_when_started_is_delivered_twice__then_the_parent_is_posted_once(
    store: Store, http: aiohttp.ClientSession, sandbox: TestServer
) -> None:
    await _seed(store, slack_channel="C-INC-1")
    notifier = _notifier(store, sandbox)
    await notifier.handle(_update("started"))
    await notifier.handle(_update("started"))

    messages = await _messages(http, sandbox)
    assert [m["channel"] for m in messages] == ["C-INC-1"]


async def test_when_two_workers_start_at_once__then_only_one_parent_is_posted(
    store: Store, http: aiohttp.ClientSession, sandbox: TestServer
) -> None:
    await _seed(store)
    notifier = _notifier(store, sandbox)
    results = await asyncio.gather(
        notifier.handle(_update("started")),
        notifier.handle(_update("started")),
        return_exceptions=True,
    )
    assert all(r is None or isinstance(r, RetryLater) for r in results), results
    await notifier.handle(_update("started"))  # a requeued message finds the parent
    assert len(await _messages(http, sandbox)) == 1


async def test_when_a_milestone_arrives__then_it_is_a_threaded_reply_posted_once_per_percent(
    store: Store, http: aiohttp.ClientSession, sandbox: TestServer
) -> None:
    await _seed(store)
    await _receipts(
        store,
        "ntc_s1",
        [("kakao", "delivered", None), ("sms", "sent", "kakao"), ("kakao", "claimed", None)],
    )
    notifier = _notifier(store, sandbox)
    await notifier.handle(_update("started"))
    await notifier.handle(_update("milestone", 50))
    await notifier.handle(_update("milestone", 50))
    await notifier.handle(_update("milestone", 75))

    parent_ts = (await _slack_doc(store))["ts"]
    replies = [m for m in await _messages(http, sandbox, thread_ts=parent_ts) if m["thread_ts"]]
    assert [m["thread_ts"] for m in replies] == [parent_ts, parent_ts]
    assert replies[0]["text"] == (
        "Notice #1 at 50%: 2 reached (kakao 1, sms 1), 1 fell back from kakao, "
        "0 skipped, 0 failed, 1 delivered"
    )
    assert replies[1]["text"].startswith("Notice #1 at 75%: ")
    assert sorted((await _slack_doc(store))["milestones"]) == [50, 75]


async def test_when_a_milestone_comes_before_started__then_the_parent_is_posted_first(
    store: Store, http: aiohttp.ClientSession, sandbox: TestServer
) -> None:
    await _seed(store)
    notifier = _notifier(store, sandbox)
    await notifier.handle(_update("milestone", 25))
    await notifier.handle(_update("started"))

    parent, reply = await _messages(http, sandbox)
    assert parent["thread_ts"] is None and reply["thread_ts"] == parent["ts"]
    assert reply["text"].startswith("Notice #1 at 25%")


async def test_when_a_notice_completes__then_its_summary_matches_receipts_and_the_parent_is_edited(
    store: Store, http: aiohttp.ClientSession, sandbox: TestServer
) -> None:
    await _seed(store)
    rows: list[tuple[str, str, str | None]] = [
        *[("kakao", "delivered", None)] * 5,
        ("kakao", "sent", None),
        *[("sms", "delivered", "kakao")] * 2,
        ("sms", "undelivered", "kakao"),
        ("sms", "failed", "kakao"),
        ("kakao", "failed", None),
        ("none", "skipped", None),
        ("none", "skipped", None),
    ]
    await _receipts(store, "ntc_s1", rows)
    notifier = _notifier(store, sandbox)
    await notifier.handle(_update("started"))
    await notifier.handle(_update("completed", 100))
    await notifier.handle(_update("completed", 100))

    counts = await counters.of_notice(store, "ntc_s1")
    parent, summary = await _messages(http, sandbox)
    assert summary["thread_ts"] == parent["ts"]
    assert summary["text"] == (
        "Notice #1 completed: 9 reached (kakao 6, sms 3), 4 fell back from kakao, "
        "2 skipped, 2 failed, 7 delivered; "
        "1 delivery reports awaited; this summary is updated as they come"
    )
    numbers = dict(
        (label, int(n))
        for n, label in re.findall(r"(\d+) (reached|skipped|failed|delivered)", summary["text"])
    )
    assert numbers == {
        "reached": counts.reached(),
        "skipped": counts.count("skipped"),
        "failed": counts.count("failed"),
        "delivered": counts.count("delivered"),
    }
    assert "4 fell back from kakao" in summary["text"] and counts.fell_back == {"kakao": 4}
    fields = {f["text"] for f in summary["blocks"][1]["fields"]}
    assert {"*Reached*\n9", "*Delivered*\n7", "*Undelivered*\n1", "*Failed*\n2"} <= fields

    assert parent["updated_at"] is not None
    assert "completed" in parent["text"] and "9 reached (kakao 6, sms 3)" in parent["text"]
    assert "*Status*\nCompleted" in {f["text"] for f in parent["blocks"][1]["fields"]}
    slack = await _slack_doc(store)
    assert slack["completed_ts"] == summary["ts"] and slack["parent_final"] is True
    assert slack["final_counts"]["fell_back"] == {"kakao": 4}


async def test_when_the_parent_edit_failed_after_the_summary__then_a_retry_only_edits_it(
    store: Store, http: aiohttp.ClientSession, sandbox: TestServer
) -> None:
    await _seed(store)
    notifier = _notifier(store, sandbox)
    await notifier.handle(_update("started"))
    shown = {"by_channel": {"sms": {"delivered": 3}}, "fell_back": {}}
    await store.notices.update_one(
        {"_id": "ntc_s1"},
        {"$set": {"slack.completed_ts": "1.000001", "slack.final_counts": shown}},
    )
    await _receipts(store, "ntc_s1", [("sms", "delivered", None)])  # changed since the summary

    await notifier.handle(_update("completed", 100))

    [parent] = await _messages(http, sandbox)
    assert parent["updated_at"] is not None and "3 reached (sms 3)" in parent["text"]
    assert (await _slack_doc(store))["parent_final"] is True


async def test_when_a_milestone_arrives_after_completion__then_it_is_not_posted(
    store: Store, http: aiohttp.ClientSession, sandbox: TestServer
) -> None:
    await _seed(store)
    notifier = _notifier(store, sandbox)
    await notifier.handle(_update("completed", 100))
    await notifier.handle(_update("milestone", 75))
    assert len(await _messages(http, sandbox)) == 2  # parent and summary


async def test_when_slack_rate_limits__then_the_post_waits_retry_after_and_succeeds(
    store: Store, http: aiohttp.ClientSession, sandbox: TestServer
) -> None:
    await _seed(store)
    await _rate_limit(http, sandbox, count=1, retry_after=1)
    started = time.monotonic()
    await _notifier(store, sandbox).handle(_update("started"))

    assert time.monotonic() - started >= 1.0
    assert await _rate_limit(http, sandbox) == 0
    [parent] = await _messages(http, sandbox)
    assert (await _slack_doc(store))["ts"] == parent["ts"]


async def test_when_the_rate_limit_outlasts_the_retries__then_retry_later_and_post_once_after(
    store: Store, http: aiohttp.ClientSession, sandbox: TestServer
) -> None:
    await _seed(store)
    await _rate_limit(http, sandbox, count=1, retry_after=0)
    notifier = _notifier(store, sandbox, retries=0)
    with pytest.raises(RetryLater, match="ratelimited"):
        await notifier.handle(_update("started"))
    assert await _messages(http, sandbox) == []
    assert (await _slack_doc(store)).get("claims", {}) == {}  # the claim was given back

    await notifier.handle(_update("started"))
    assert len(await _messages(http, sandbox)) == 1


async def test_when_the_token_is_wrong__then_unprocessable_names_the_slack_error(
    store: Store, sandbox: TestServer, caplog: pytest.LogCaptureFixture
) -> None:
    await _seed(store)
    token = "xoxb-wrong-token"
    with pytest.raises(Unprocessable, match="invalid_auth"):
        await _notifier(store, sandbox, token=token).handle(_update("started"))
    assert token not in caplog.text
    assert any(getattr(r, "error", None) == "invalid_auth" for r in caplog.records)


async def test_when_the_channel_is_unknown__then_unprocessable_says_channel_not_found(
    store: Store, sandbox: TestServer
) -> None:
    await _seed(store, slack_channel="")
    with pytest.raises(Unprocessable, match="channel_not_found"):
        await _notifier(store, sandbox, default_channel="").handle(_update("started"))


async def test_when_slack_cannot_be_reached__then_retry_later(store: Store) -> None:
    await _seed(store)
    server = TestServer(init_app(SandboxConfig(behaviour=Behaviour(latency_ms=0))))
    await server.start_server()
    notifier = _notifier(store, server)
    await server.close()  # nothing listens on its port any more
    with pytest.raises(RetryLater, match="ClientConnectorError"):
        await notifier.handle(_update("started"))
    assert (await _slack_doc(store)).get("claims", {}) == {}


async def test_when_a_claim_is_fresh__then_retry_later__and_when_stale__then_it_is_taken_over(
    store: Store, http: aiohttp.ClientSession, sandbox: TestServer
) -> None:
    await _seed(store)
    now = datetime.now(UTC)
    await store.notices.update_one({"_id": "ntc_s1"}, {"$set": {"slack.claims.parent": now}})
    notifier = _notifier(store, sandbox, claim_lease_s=60)
    with pytest.raises(RetryLater, match="being posted"):
        await notifier.handle(_update("started"))
    assert await _messages(http, sandbox) == []

    stale = now - timedelta(seconds=120)
    await store.notices.update_one({"_id": "ntc_s1"}, {"$set": {"slack.claims.parent": stale}})
    await notifier.handle(_update("started"))
    assert len(await _messages(http, sandbox)) == 1


async def test_when_the_notice_or_incident_is_missing__then_unprocessable(
    store: Store, http: aiohttp.ClientSession, sandbox: TestServer
) -> None:
    notifier = _notifier(store, sandbox)
    with pytest.raises(Unprocessable, match="notice ntc_nope does not exist"):
        await notifier.handle(_update("started", notice_id="ntc_nope"))
    await store.notices.insert_one({"_id": "ntc_orphan", "incident_id": "inc_gone", "seq": 1})
    with pytest.raises(Unprocessable, match="incident inc_gone"):
        await notifier.handle(_update("started", notice_id="ntc_orphan"))
    assert await _messages(http, sandbox) == []


async def test_when_reports_arrive_after_completion__then_the_summary_follows_them_then_is_final(
    store: Store, http: aiohttp.ClientSession, sandbox: TestServer
) -> None:
    """The summary must not freeze ``delivered`` at completion (staff saw 3,255 of 9,645)."""
    await _seed(store)
    await _receipts(store, "ntc_s1", [("sms", "delivered", None)] + [("sms", "sent", None)] * 3)
    notifier = _notifier(store, sandbox)
    await notifier.handle(_update("started"))
    await notifier.handle(_update("completed", 100))
    parent, summary = await _messages(http, sandbox)
    assert "1 delivered; 3 delivery reports awaited" in summary["text"]

    # Two reports come in: the sent become delivered and undelivered.
    await counters.add(
        store,
        "ntc_s1",
        counters.Delta()
        .move("sms", "sent", "sms", "delivered")
        .move("sms", "sent", "sms", "undelivered"),
        shard="test",
    )
    await notifier.handle(_update("reports", 100))
    _, summary = await _messages(http, sandbox)
    assert summary["updated_at"] is not None
    assert "2 delivered; 1 delivery reports awaited" in summary["text"]
    assert "*Undelivered*\n1" in {f["text"] for f in summary["blocks"][1]["fields"]}

    # The last one never comes: at the cut-off the summary says so, for good.
    await notifier.handle(_update("final", 100))
    parent, summary = await _messages(http, sandbox)
    assert summary["text"].endswith("final: 1 delivery reports never came (no longer awaited)")
    assert "2 delivered" in parent["text"]
    assert (await _slack_doc(store))["summary_final"] is True
    await counters.add(
        store, "ntc_s1", counters.Delta().move("sms", "sent", "sms", "delivered"), shard="test"
    )
    await notifier.handle(_update("reports", 100))  # too late: final stays final
    _, after = await _messages(http, sandbox)
    assert after["text"] == summary["text"]


async def test_when_a_reports_update_comes_before_the_summary__then_it_is_tried_later(
    store: Store, http: aiohttp.ClientSession, sandbox: TestServer
) -> None:
    await _seed(store)
    notifier = _notifier(store, sandbox)
    await notifier.handle(_update("started"))
    with pytest.raises(RetryLater):
        await notifier.handle(_update("reports", 100))
