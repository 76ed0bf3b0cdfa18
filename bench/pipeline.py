"""Benchmark: one notice to N people through the whole pipeline, against this machine's ceilings.

    python bench/pipeline.py --n 100000          # make bench (N=100000 by default)

What it does, in order:

1. starts SecantusDB (unless ``--mongo-url``) and seeds N people straight into
   MongoDB (``seeding.py``);
2. starts every Alimi service as its own process (``alimi_devstack.Stack``;
   RabbitMQ must be running), the sandbox providers answering each call after
   a fixed latency (``--latency-ms``, 20 by default) with no rate limit;
3. measures the ceilings for ``--ceiling-s`` seconds each (``ceilings.py``): the
   raw broker rate, the raw store rate and the naive one-at-a-time baseline;
4. posts one SMS incident to all N through intake's API, approves it with a
   second key, and watches memory and the services' counters until every
   receipt is final and every delivery report applied (``sampling.py``);
5. reads the receipts once and prints a table, writes a JSON file and a PNG
   chart (``report.py``, ``table.py``, ``chart.py``); the last line printed is ``RESULT ...``.

It is a measurement, not a test: nothing here fails on a number.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import ceilings
import chart
import completion
import profiling
import report
import sampling
import seeding
import table

from alimi.store import Store
from alimi_devstack import DEFAULT_AMQP_URL, Stack, StackError

DEFAULT_OUT = Path(__file__).resolve().parent / "results"
SAMPLE_S = 0.5
BIN_S = 1.0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=int(os.environ.get("N") or 100_000))
    parser.add_argument("--latency-ms", type=float, default=20.0, help="sandbox latency per call")
    parser.add_argument("--ceiling-s", type=float, default=8.0, help="seconds per ceiling")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where the JSON and PNG go")
    parser.add_argument("--mongo-url", help="use this MongoDB instead of starting SecantusDB")
    parser.add_argument("--amqp-url", default=os.environ.get("AMQP_URL", DEFAULT_AMQP_URL))
    parser.add_argument(
        "--segmenters",
        type=int,
        default=int(os.environ.get("SEGMENTERS") or 1),
        help="segmenter processes sharing the notice's partitions",
    )
    parser.add_argument(
        "--delivery",
        type=int,
        default=int(os.environ.get("DELIVERY") or 1),
        help="SMS delivery processes (the notice is SMS only)",
    )
    parser.add_argument("--timeout-s", type=float, help="give up waiting (default: from N)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory and logs")
    parser.add_argument("--no-chart", action="store_true", help="skip the PNG")
    parser.add_argument(
        "--profile",
        type=Path,
        help="record every process (the database's too) with py-spy while the notice goes out,"
        " into this folder: one raw profile per process and a summary of the hottest frames",
    )
    parser.add_argument(
        "--no-reports",
        action="store_true",
        help="the sandbox sends no delivery reports (isolates the send path; a diagnosis)",
    )
    return parser.parse_args(argv)


def _interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # SIGTERM, or SIGINT even when started in the background: stop the stack on the way out.
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    if args.n < 1:
        print("--n must be at least 1", file=sys.stderr)
        return 2
    if not 1 <= args.segmenters <= 16 or not 1 <= args.delivery <= 16:
        print("--segmenters and --delivery must be between 1 and 16", file=sys.stderr)
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="alimi-bench-pipeline-"))
    namespace = f"bench{os.getpid()}"
    stack = Stack(
        workdir=workdir / "stack",
        namespace=namespace,
        amqp_url=args.amqp_url,
        mongo_url=args.mongo_url,
        mongo_db=namespace if args.mongo_url else "bench",
        replicas={"segmenter": args.segmenters, "delivery-sms": args.delivery},
        extra_env={
            "SANDBOX_LATENCY_MS": str(args.latency_ms),
            "SANDBOX_LATENCY_JITTER_MS": "0",
            "ALIMI_LOG_LEVEL": "INFO",
            **(
                {"SANDBOX_SMS_REPORT_URL": "", "SANDBOX_KAKAO_REPORT_URL": ""}
                if args.no_reports
                else {}
            ),
        },
    )
    results: dict[str, Any] = {
        "command": " ".join([Path(sys.executable).name, "bench/pipeline.py", *sys.argv[1:]]),
        "started_at": datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": report.machine(),
        "config": {
            "n": args.n,
            "sandbox_latency_ms": args.latency_ms,
            "sandbox_rate_limit": None,
            "delivery_reports": not args.no_reports,
            "ceiling_s": args.ceiling_s,
            "segmenters": args.segmenters,
            "sms_delivery_processes": args.delivery,
            "batch_size": int(os.environ.get("ALIMI_BATCH_SIZE", 100)),
            "mongodb": (args.mongo_url and "given") or "SecantusDB started by the benchmark",
        },
    }
    ok = False
    try:
        stack.check_rabbitmq()
        if stack.mongo_url is None:
            stack.start_mongo()
        assert stack.mongo_url is not None
        print(f"seeding {args.n:,} people straight into MongoDB ...", flush=True)
        results["seed"] = asyncio.run(_seed(stack.mongo_url, stack.mongo_db, args.n))
        print(
            f"  {args.n:,} people in {results['seed']['seconds']}s "
            f"(insert {results['seed']['insert_s']}s, indexes {results['seed']['index_s']}s)",
            flush=True,
        )
        print("starting every service as its own process ...", flush=True)
        stack.start_all()
        print(f"measuring the ceilings, {args.ceiling_s:g}s each ...", flush=True)
        results["ceilings"] = asyncio.run(_ceilings(stack, args.ceiling_s))
        print(f"sending one notice to {args.n:,} people ...", flush=True)
        timeout = args.timeout_s or max(600.0, args.n / 20)
        results["pipeline"] = asyncio.run(_pipeline(stack, args.n, timeout, args.profile))
        ok = True
    except StackError as exc:
        print(f"cannot start the stack: {exc}; logs in {stack.workdir}", file=sys.stderr)
        return 2
    except (TimeoutError, RuntimeError) as exc:
        print(f"benchmark failed: {exc}; logs in {stack.workdir}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"interrupted; stopping the stack (logs in {stack.workdir})", file=sys.stderr)
        return 130
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):  # let the clean-up finish
            signal.signal(sig, signal.SIG_IGN)
        stack.stop_all()
        with contextlib.suppress(Exception):
            asyncio.run(ceilings.delete_namespace(args.amqp_url, namespace))
        if args.mongo_url:
            with contextlib.suppress(Exception):
                asyncio.run(_drop(args.mongo_url, namespace))
        if ok and not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        elif ok:
            print(f"work directory kept: {workdir}")
    results["machine"]["loadavg_end"] = report.loadavg()
    summary = report.summarise(results)
    args.out.mkdir(parents=True, exist_ok=True)
    json_path = args.out / f"pipeline-{args.n}.json"
    png_path = None if args.no_chart else args.out / f"pipeline-{args.n}.png"
    if png_path is not None:
        chart.chart(results, png_path)
    report.write_json(results, json_path)
    print(table.table(results))
    print(f"\nJSON: {json_path}" + (f"\nchart: {png_path}" if png_path else ""))
    print(report.result_line(summary), flush=True)
    return 0


async def _seed(mongo_url: str, database: str, n: int) -> dict[str, Any]:
    store = Store(mongo_url, database)
    try:
        return await seeding.seed(store, n)
    finally:
        await store.close()


async def _drop(mongo_url: str, database: str) -> None:
    store = Store(mongo_url, database)
    try:
        await store.client.drop_database(database)
    finally:
        await store.close()


async def _ceilings(stack: Stack, seconds: float) -> dict[str, Any]:
    assert stack.mongo_url is not None
    found: dict[str, Any] = {}
    found["broker"] = await ceilings.broker(
        stack.amqp_url, f"{stack.namespace}ceiling", seconds=seconds
    )
    print(f"  broker: {found['broker']['msgs_per_s']:,} msgs/s", flush=True)
    scratch = f"{stack.mongo_db}_ceiling"[:60]
    server_pid = stack.mongo_process.popen.pid if stack.mongo_process is not None else None
    found["store"] = await ceilings.store(
        stack.mongo_url, scratch, seconds=seconds, server_pid=server_pid
    )
    print(
        f"  store: {found['store']['people_per_s']:,} people/s "
        f"(database CPU {found['store']['server_cpu_ms_per_person']} ms per person)",
        flush=True,
    )
    found["concurrent"] = await ceilings.concurrent(
        stack.sandbox_url, stack.mongo_url, scratch, seconds=seconds
    )
    print(f"  concurrent: {found['concurrent']['recipients_per_s']:,} recipients/s", flush=True)
    found["naive"] = await ceilings.naive(
        stack.sandbox_url, stack.mongo_url, scratch, seconds=seconds
    )
    print(f"  naive: {found['naive']['recipients_per_s']:,} recipients/s", flush=True)
    return found


def _incident() -> dict[str, Any]:
    return {
        "title": "회원 정보 유출",
        "severity": "high",
        "discovered_at": "2026-11-28T09:00:00+09:00",
        "contact": "02-1588-0000",
        "notice": {
            "body": "#{name}님, 개인정보 유출 사고를 알려드립니다: #{status_url}",
            "template": "short_notice",
            "channels": ["sms"],
        },
        "audience": {"filter": {"tags_any": [seeding.TAG]}},
    }


async def _post_and_approve(stack: Stack) -> tuple[str, str]:
    operator = {"Authorization": f"Bearer {stack.api_key('operator')}"}
    approver = {"Authorization": f"Bearer {stack.api_key('approver')}"}
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{stack.intake_url}/v1/incidents", json=_incident(), headers=operator
        ) as resp:
            if resp.status != 201:
                raise RuntimeError(f"incident refused: HTTP {resp.status} {await resp.text()}")
            created = await resp.json()
        notice_id = created["notice_id"]
        async with http.post(
            f"{stack.intake_url}/v1/notices/{notice_id}/approve", headers=approver
        ) as resp:
            if resp.status != 200:
                raise RuntimeError(f"approval refused: HTTP {resp.status} {await resp.text()}")
    return created["incident_id"], notice_id


async def _pipeline(
    stack: Stack, n: int, timeout_s: float, profile_dir: Path | None = None
) -> dict[str, Any]:
    assert stack.mongo_url is not None
    pids = {name: proc.popen.pid for name, proc in stack.processes.items()}
    if stack.mongo_process is not None:
        pids["mongo"] = stack.mongo_process.popen.pid
    metrics_urls = {
        name: f"{proc.ops_url}/metrics"
        for name, proc in stack.processes.items()
        if proc.ops_url
        and (sampling.service_of(name) in ("segmenter", "receipts") or name.startswith("delivery-"))
    }
    store = Store(stack.mongo_url, stack.mongo_db)
    watcher = sampling.Watcher(
        pids,
        metrics_urls,
        interval_s=SAMPLE_S,
        report_stats_url=f"{stack.sandbox_url}/_sandbox/reports/stats",
    )
    watcher.start()
    recorders: list[profiling.Recorder] = []
    try:
        await asyncio.sleep(2 * SAMPLE_S)  # memory at rest, before the notice
        if profile_dir is not None:
            recorders = profiling.start(pids, profile_dir)
        ops_before = await _opcounters(store)
        incident_id, notice_id = await _post_and_approve(stack)
        approved_mono = time.monotonic() - watcher.started
        notice = await store.notices.find_one({"_id": notice_id}, {"approved_at": 1})
        if notice is None or notice.get("approved_at") is None:
            raise RuntimeError(f"notice {notice_id} has no approved_at after its approval")
        approved_at = notice["approved_at"]
        notice, complete = await completion.wait(store, watcher, notice_id, timeout_s)
        await asyncio.sleep(SAMPLE_S)
    finally:
        await watcher.stop()
        if recorders:
            assert profile_dir is not None
            profiling.stop(recorders)
            print(f"profiles: {profile_dir}", flush=True)
            print(profiling.summary(recorders), flush=True)
    ops_after = await _opcounters(store)
    read = await sampling.read_receipts(store, notice_id, approved_at, BIN_S)
    await store.close()
    found = report.pipeline_results(
        n=n,
        incident_id=incident_id,
        notice=notice,
        approved_at=approved_at,
        approved_mono=approved_mono,
        read=read,
        watcher=watcher,
        bin_s=BIN_S,
    )
    found["complete"] = complete
    found["timeout_s"] = timeout_s
    found["database_ops_per_person"] = {
        op: round((ops_after.get(op, 0) - ops_before.get(op, 0)) / n, 3) for op in ops_after
    }
    return found


async def _opcounters(store: Store) -> dict[str, int]:
    """The database's operation counters (inserts, queries, updates, ... so far)."""
    status = await store.client.admin.command("serverStatus")
    return {k: int(v) for k, v in (status.get("opcounters") or {}).items()}


if __name__ == "__main__":
    sys.exit(main())
