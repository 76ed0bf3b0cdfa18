"""A real Prometheus scraping the real processes agrees with MongoDB.

Debian's ``prometheus`` binary (``.ci/ensure-prometheus`` installs it) scrapes every
service of the ``stack`` fixture once a second, with Alimi's own alert rules loaded.
After an SMS notice completes, the number of people Prometheus counts as sent on SMS
equals the receipts MongoDB holds as sent (or since delivered / undelivered), every
rule evaluates without error, and every dashboard query runs.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import aiohttp
import pytest
import yaml

from alimi.store import Store
from alimi_devstack import Stack, StackError, eventually, free_port, wait_ready
from support import receipts_of

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy/prometheus/alerts.yml"
DASHBOARD = ROOT / "deploy/grafana/dashboards/alimi.json"
PEOPLE = 20
SENT_STATUSES = ["sent", "delivered", "undelivered"]


@pytest.fixture
def prometheus_binary() -> str:
    """Asked for before the stack, so a machine without Prometheus skips at once."""
    path = shutil.which(os.environ.get("PROMETHEUS", "prometheus"))
    if path is None:
        message = "prometheus is not installed (bash .ci/ensure-prometheus installs it)"
        if os.environ.get("CI"):
            pytest.fail(f"{message}; CI is set, so this fails instead of skipping")
        pytest.skip(message)
    return path


def scrape_config(stack: Stack) -> dict[str, Any]:
    """One job per process, named like the compose service, as the alert rules expect.
    The sandbox serves no /metrics."""
    jobs = []
    for name, process in stack.processes.items():
        if name == "sandbox" or process.ops_url is None:
            continue
        jobs.append(
            {
                "job_name": name,
                "scrape_interval": "1s",
                "static_configs": [{"targets": [urlparse(process.ops_url).netloc]}],
            }
        )
    return {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(RULES)],
        "scrape_configs": jobs,
    }


@pytest.fixture
def prometheus(prometheus_binary: str, stack: Stack, tmp_path: Path) -> Iterator[str]:
    """A real Prometheus on a free port scraping ``stack``; yields its base URL."""
    config = tmp_path / "prometheus.yml"
    config.write_text(json.dumps(scrape_config(stack)))  # JSON is YAML
    port = free_port()
    log_path = tmp_path / "prometheus.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [
                prometheus_binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp_path / 'prometheus-data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        try:
            wait_ready(f"{url}/-/ready", timeout_s=30, proc=process)
        except StackError as exc:
            pytest.fail(f"Prometheus did not start: {exc}\n{log_path.read_text()}")
        yield url
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def query(http: aiohttp.ClientSession, prometheus: str, expr: str) -> list[dict[str, Any]]:
    async with http.get(f"{prometheus}/api/v1/query", params={"query": expr}) as resp:
        body = await resp.json()
    assert body["status"] == "success", (expr, body)
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


async def scalar(http: aiohttp.ClientSession, prometheus: str, expr: str) -> float | None:
    result = await query(http, prometheus, expr)
    return float(result[0]["value"][1]) if result else None


async def notify_by_sms(http: aiohttp.ClientSession, stack: Stack) -> dict[str, Any]:
    """Load PEOPLE people, post an SMS-only notice, approve it with a second key."""
    operator = {"Authorization": f"Bearer {stack.api_key('operator')}"}
    approver = {"Authorization": f"Bearer {stack.api_key('approver')}"}
    people = [
        {"external_id": f"m{i:03d}", "phone": f"010-5{i:03d}-1{i:03d}", "tags": ["metrics"]}
        for i in range(PEOPLE)
    ]
    async with http.post(f"{stack.intake_url}/v1/subjects", json=people, headers=operator) as r:
        assert r.status == 200, await r.text()
    incident = {
        "title": "회원 정보 유출",
        "severity": "high",
        "discovered_at": "2026-11-28T09:00:00+09:00",
        "contact": "고객센터 1588-0000",
        "notice": {
            "body": "유출 안내",
            "template": "short_notice",
            "channels": ["sms"],
        },
        "audience": {"filter": {"tags_any": ["metrics"]}},
    }
    async with http.post(f"{stack.intake_url}/v1/incidents", json=incident, headers=operator) as r:
        assert r.status == 201, await r.text()
        created: dict[str, Any] = await r.json()
    approve = f"{stack.intake_url}/v1/notices/{created['notice_id']}/approve"
    async with http.post(approve, headers=approver) as r:
        assert r.status == 200, await r.text()
    view_url = f"{stack.intake_url}/v1/incidents/{created['incident_id']}"

    async def completed() -> bool:
        async with http.get(view_url, headers=operator) as r:
            view = await r.json()
        return bool(view["notices"][0]["state"] == "completed")

    await eventually(completed, 30, "the notice to complete")
    return created


async def test_when_a_notice_completes__then_prometheus_counts_as_many_sent_as_mongodb(
    prometheus: str, stack: Stack, store: Store
) -> None:
    async with aiohttp.ClientSession() as http:
        # Counters are cumulative, so Prometheus may take its first scrape (a few seconds
        # after it starts) while the notice is under way.
        await notify_by_sms(http, stack)
        completed_at = time.time()
        sent = sum(
            1
            for r in (await receipts_of(store)).values()
            if r["channel"] == "sms" and r["status"] in SENT_STATUSES
        )

        jobs = len(scrape_config(stack)["scrape_configs"])

        async def scraped_after_completion() -> bool:
            fresh = await scalar(http, prometheus, f"count(timestamp(up) > {completed_at + 0.5})")
            return fresh == jobs

        await eventually(scraped_after_completion, 15, "a scrape of every process after completion")
        counted = await scalar(
            http, prometheus, 'sum(alimi_deliveries_total{channel="sms", outcome="sent"})'
        )
        up = await query(http, prometheus, "up")

        # Every rule has been evaluated on real series.
        async def rules_evaluated() -> list[dict[str, Any]] | None:
            async with http.get(f"{prometheus}/api/v1/rules") as resp:
                groups = (await resp.json())["data"]["groups"]
            rules = [rule for group in groups for rule in group["rules"]]
            return rules if all(r["health"] != "unknown" for r in rules) else None

        rules = await eventually(rules_evaluated, 10, "every rule to be evaluated")
        # Every dashboard query runs against the real server.
        dashboard = json.loads(DASHBOARD.read_text())
        exprs = [
            target["expr"].replace("$__rate_interval", "1m")
            for panel in dashboard["panels"]
            for target in panel.get("targets", [])
        ]
        await asyncio.gather(*(query(http, prometheus, expr) for expr in exprs))

    assert sent == PEOPLE
    assert counted == sent
    assert {r["metric"]["job"]: r["value"][1] for r in up} == {
        job["job_name"]: "1" for job in scrape_config(stack)["scrape_configs"]
    }
    assert len(up) == jobs
    assert [(r["name"], r.get("lastError")) for r in rules if r["health"] != "ok"] == []
    assert len(rules) == len(
        [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]
    )
