"""``make bench`` at a small N, so the benchmark cannot rot.

It runs ``bench/pipeline.py`` as ``make bench`` does (its own SecantusDB, so
the database's CPU is measured too; this session's RabbitMQ), and checks what
it reports: every person got one receipt, the counts add up, the JSON, the
chart and the last ``RESULT`` line have their shape. No timing is asserted:
the numbers are the benchmark's business, not the test suite's.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "bench" / "pipeline.py"
N = 300
RESULT = re.compile(
    r"RESULT deliveries_per_s=(?P<deliveries_per_s>\S+)"
    r" vs_broker_per_msg=(?P<vs_broker_per_msg>\S+)"
    r" vs_store=(?P<vs_store>\S+) vs_concurrent=(?P<vs_concurrent>\S+)"
    r" vs_naive=(?P<vs_naive>\S+) store_cpu_ms_per_person=(?P<store_cpu_ms_per_person>\S+)"
    r" segmenter_peak_rss_mb=(?P<segmenter_peak_rss_mb>\S+)"
)


@pytest.mark.timeout(900)
def test_when_the_benchmark_runs_for_a_few_hundred_people__then_it_reports_each_one_once(
    tmp_path: Path, amqp_url: str
) -> None:
    out = tmp_path / "results"
    done = subprocess.run(
        [
            sys.executable,
            str(BENCH),
            *("--n", str(N), "--ceiling-s", "1", "--out", str(out)),
            *("--amqp-url", amqp_url),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=840,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]

    last = done.stdout.strip().splitlines()[-1]
    match = RESULT.fullmatch(last)
    assert match, f"last line is not a RESULT line: {last!r}"
    assert all(float(value) > 0 for value in match.groupdict().values()), last

    results = json.loads((out / f"pipeline-{N}.json").read_text())
    pipeline = results["pipeline"]
    assert pipeline["complete"] is True
    assert pipeline["recipients_published"] == N
    assert pipeline["receipts"] == N
    assert pipeline["accepted_by_provider"] == N
    assert pipeline["counts"] == {"sms": {"delivered": N}}
    assert pipeline["stages"]["delivery"]["sms"]["accepted"] == N
    assert pipeline["stages"]["reports"]["applied"] == N
    assert pipeline["stages"]["receipt_writes"]["writes"] == 2 * N  # a claim, a report
    assert len(pipeline["series"]["accepted_per_s"]["sms"]) == len(pipeline["series"]["t"])
    assert sum(pipeline["series"]["accepted_per_s"]["sms"]) * pipeline["series"]["bin_s"] == N
    latency = pipeline["latency_s"]
    assert 0 < latency["p50"] <= latency["p95"] <= latency["p99"] <= latency["max"]
    assert {"segmenter", "delivery-sms", "receipts", "intake", "sandbox"} <= set(
        pipeline["peak_rss_mb"]
    )
    assert all(mb > 0 for mb in pipeline["peak_rss_mb"].values())
    assert float(match["deliveries_per_s"]) == results["summary"]["deliveries_per_s"]
    assert float(match["segmenter_peak_rss_mb"]) == pipeline["peak_rss_mb"]["segmenter"]

    ceilings = results["ceilings"]
    assert ceilings["broker"]["acked"] == ceilings["broker"]["messages"] > 0
    assert ceilings["store"]["people"] > 0 and ceilings["store"]["server_cpu_ms_per_person"] > 0
    assert ceilings["concurrent"]["recipients"] > 0
    assert ceilings["naive"]["recipients"] > 0
    assert results["machine"]["nproc"] >= 1 and results["machine"]["cpu_model"]
    assert {t["target"] for t in results["summary"]["targets"]} >= {
        "100,000 people end to end in < 60 s",
        "deliveries/s >= 1.5 x the concurrent baseline",
        "database CPU per person <= 0.5 ms",
    }
    assert (out / f"pipeline-{N}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
