"""Benchmark: a large subjects CSV streamed into a real intake process.

Generates a CSV of ``--rows`` people (streamed to a temporary file, one row in
every ``--bad-every`` with an invalid phone number), starts SecantusDB and the
intake service as separate processes (``alimi_devstack.Stack``; RabbitMQ must
be running), uploads the file with a streaming client to
``POST /v1/subjects/import``, follows the import's job to its end and samples
the intake process's resident memory meanwhile. Prints rows per second (upload
and job together) and the intake's peak RSS.

    python bench/import_subjects.py --rows 1000000      # make bench-import

It is a measurement, not a test: nothing here fails on a number.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import aio_pika
import aiohttp

from alimi import topology
from alimi.store import Store
from alimi_devstack import DEFAULT_AMQP_URL, Stack, StackError

MB = 1024 * 1024


def write_csv(path: Path, rows: int, bad_every: int) -> int:
    """``rows`` people, written as they are made; returns how many have a bad number."""
    bad = 0
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["external_id", "name", "phone", "locale", "tags", "channels"])
        for i in range(rows):
            number = f"010-{2000 + i // 10_000}-{i % 10_000:04d}"
            if bad_every and i % bad_every == bad_every - 1:
                number, bad = "010-12", bad + 1
            writer.writerow(
                [
                    f"b{i:08d}",
                    f"고객{i}",
                    number,
                    "ko" if i % 5 else "en",
                    f"breach|batch-{i % 10}",
                    "kakao|sms" if i % 3 else "sms",
                ]
            )
    return bad


def rss_bytes(pid: int) -> tuple[int, int]:
    """(current, peak) resident memory of ``pid``: psutil if installed, else /proc."""
    try:
        import psutil  # type: ignore[import-untyped]
    except ImportError:
        fields: dict[str, int] = {}
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                name, _, value = line.partition(":")
                if name in ("VmRSS", "VmHWM"):
                    fields[name] = int(value.split()[0]) * 1024
        return fields.get("VmRSS", 0), fields.get("VmHWM", 0)
    info = psutil.Process(pid).memory_info()
    return info.rss, max(info.rss, getattr(info, "peak_wset", 0))


class Sampler(threading.Thread):
    """The highest RSS of ``pid`` seen, sampled every ``every_s`` until stopped."""

    def __init__(self, pid: int, every_s: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.pid, self.every_s = pid, every_s
        self.peak = 0
        self.samples = 0
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.is_set():
            with contextlib.suppress(OSError):
                self.peak = max(self.peak, rss_bytes(self.pid)[0])
                self.samples += 1
            self._done.wait(self.every_s)

    def stop(self) -> int:
        self._done.set()
        self.join()
        return self.peak


async def upload(url: str, token: str, path: Path) -> tuple[int, dict[str, Any], float]:
    """Upload the file, then follow the import's job to its end: (status, result, seconds)."""
    timeout = aiohttp.ClientTimeout(total=None, sock_read=3600)
    auth = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession(timeout=timeout) as http:
        started = time.perf_counter()
        with path.open("rb") as body:  # aiohttp sends a file in chunks, never whole
            async with http.post(
                f"{url}/v1/subjects/import",
                data=body,
                headers={**auth, "Content-Type": "text/csv"},
            ) as resp:
                job = await resp.json(content_type=None)
        if resp.status != 202:
            return resp.status, job, time.perf_counter() - started
        while job["state"] not in ("succeeded", "failed"):
            await asyncio.sleep(0.2)
            async with http.get(f"{url}{job['url']}", headers=auth) as resp:
                job = await resp.json()
        seconds = time.perf_counter() - started
        if job["state"] == "failed":
            return job["problem"]["status"], job["problem"], seconds
        return 200, job["result"], seconds


async def delete_queues(amqp_url: str, namespace: str) -> None:
    """The exchanges and queues intake declared for the benchmark's namespace."""
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        await topology.delete(await connection.channel(), topology.Names(namespace))


async def stored_subjects(mongo_url: str, database: str) -> int:
    store = Store(mongo_url, database)
    try:
        return await store.subjects.estimated_document_count()
    finally:
        await store.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=int(os.environ.get("ROWS", 1_000_000)))
    parser.add_argument("--bad-every", type=int, default=997, help="one bad row in N; 0: none")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args(argv)

    workdir = Path(tempfile.mkdtemp(prefix="alimi-bench-import-"))
    csv_path = workdir / "subjects.csv"
    started = time.perf_counter()
    bad = write_csv(csv_path, args.rows, args.bad_every)
    size = csv_path.stat().st_size
    print(
        f"generated {args.rows:,} rows ({bad:,} bad), {size / MB:.1f} MB "
        f"in {time.perf_counter() - started:.1f}s",
        flush=True,
    )

    stack = Stack(
        workdir=workdir / "stack",
        namespace=f"benchimport{os.getpid()}",
        mongo_db="benchimport",
        amqp_url=os.environ.get("AMQP_URL", DEFAULT_AMQP_URL),
    )
    try:
        stack.check_rabbitmq()
        stack.start_mongo()
        intake = stack.start_service(
            "intake",
            ["alimi_intake"],
            env={"ALIMI_IMPORT_MAX_MB": str(max(64, 2 * size // MB)), "ALIMI_LOG_LEVEL": "WARNING"},
        )
        stack.seed_api_keys()
        pid = intake.popen.pid
        before, _ = rss_bytes(pid)
        sampler = Sampler(pid)
        sampler.start()
        status, answer, seconds = asyncio.run(
            upload(stack.intake_url, stack.api_key("operator"), csv_path)
        )
        peak_sampled = sampler.stop()
        _, peak_hwm = rss_bytes(pid)
        stored = asyncio.run(stored_subjects(stack.mongo_url or "", stack.mongo_db))
    except StackError as exc:
        print(f"cannot start the stack: {exc}; logs in {workdir}", file=sys.stderr)
        return 2
    finally:
        stack.stop_all()
        with contextlib.suppress(Exception):
            asyncio.run(delete_queues(stack.amqp_url, stack.namespace))

    if status != 200:
        print(f"import failed: HTTP {status} {json.dumps(answer)[:500]}", file=sys.stderr)
        return 1
    counts = {k: answer[k] for k in ("rows", "imported", "inserted", "updated", "rejected")}
    report = {
        **counts,
        "errors_in_answer": len(answer["errors"]),
        "errors_truncated": answer["errors_truncated"],
        "subjects_stored": stored,
        "file_mb": round(size / MB, 1),
        "seconds": round(seconds, 1),
        "rows_per_s": round(args.rows / seconds),
        "intake_rss_before_mb": round(before / MB, 1),
        "intake_rss_peak_mb": round(peak_sampled / MB, 1),
        "intake_rss_hwm_mb": round(peak_hwm / MB, 1),
        "rss_samples": sampler.samples,
    }
    print(json.dumps(report, indent=2))
    print(
        f"\n{args.rows:,} rows in {seconds:.1f}s: {report['rows_per_s']:,} rows/s; "
        f"intake peak RSS {report['intake_rss_peak_mb']} MB "
        f"(before the upload {report['intake_rss_before_mb']} MB)"
    )
    if args.keep:
        print(f"work directory kept: {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
