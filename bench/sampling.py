"""What the pipeline benchmark watches while a notice goes out, and reads afterwards.

* :class:`Watcher` samples every ``interval_s``: each process's resident memory
  (``VmRSS`` and ``VmHWM`` from ``/proc/<pid>/status``) and the counters the
  services export on ``/metrics`` (people published by the segmenter, people
  handled per channel by delivery, reports applied by receipts). Scraping a
  counter costs the service a few microseconds and the database nothing.
* :func:`read_receipts` reads the notice's outcomes once at the end: its
  counts (the counters the services keep), and, streamed, its attempts (one
  document per batch: when the provider accepted whom) and its delivery
  reports (when each was applied). From them: each person's
  approval-to-acceptance latency (the attempt's time minus the notice's
  ``approved_at``), and provider acceptances and applied reports per time bin,
  which is the throughput over time per channel, exact to the person.

Nothing is counted in MongoDB while the notice goes out: polling the database
would measure the poller. The documents hold the same time series.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import re
import time
from array import array
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime

import aiohttp

from alimi import counters as notice_counters
from alimi.store import Store

MB = 1024 * 1024

# name{labels} value
_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+([-+0-9.eEinfNa]+)$")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def memory(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of ``pid`` in bytes; (0, 0) once it is gone."""
    found = {"VmRSS": 0, "VmHWM": 0}
    with contextlib.suppress(OSError), open(f"/proc/{pid}/status") as status:
        for line in status:
            name, _, value = line.partition(":")
            if name in found:
                found[name] = int(value.split()[0]) * 1024
    return found["VmRSS"], found["VmHWM"]


def parse_metrics(
    text: str, wanted: tuple[str, ...]
) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The samples of the metric families ``wanted`` in Prometheus text format."""
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for line in text.splitlines():
        if not line or line[0] == "#" or not line.startswith(wanted):
            continue
        match = _SAMPLE.match(line)
        if match is None:
            continue
        name, labels, value = match.groups()
        out[(name, tuple(sorted(_LABEL.findall(labels or ""))))] = float(value)
    return out


def total(
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    """The sum of ``name``'s samples whose labels include ``labels``."""
    return sum(
        value
        for (metric, have), value in samples.items()
        if metric == name and all((k, v) in have for k, v in labels.items())
    )


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time ``pid`` has used so far; 0 once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Sample:
    t: float  # seconds since the watcher started
    rss: dict[str, int]
    counters: dict[str, float]
    cpu: dict[str, float] = field(default_factory=dict)  # CPU seconds used so far


def service_of(process: str) -> str:
    """The service a process of the stack runs: ``delivery-sms.2`` -> ``delivery-sms``."""
    return process.split(".", 1)[0]


@dataclass
class Watcher:
    """Samples memory and counters of the stack's processes until stopped."""

    pids: dict[str, int]
    metrics_urls: dict[str, str]  # process name -> its /metrics URL
    report_stats_url: str | None = None  # the sandbox's delivery-report counters
    interval_s: float = 0.5
    samples: list[Sample] = field(default_factory=list)
    peak_hwm: dict[str, int] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)
    _task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.started = time.monotonic()
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._read_hwm()

    def latest(self) -> dict[str, float]:
        return self.samples[-1].counters if self.samples else {}

    def cpu_used(self, after: float) -> dict[str, float]:
        """CPU seconds each process used from the first sample at or after ``after``
        (seconds since the watcher started) to the last sample."""
        later = [s for s in self.samples if s.t >= after]
        if len(later) < 2:
            return {}
        first, last = later[0], later[-1]
        return {name: last.cpu.get(name, 0.0) - first.cpu.get(name, 0.0) for name in last.cpu}

    def peaks(self) -> dict[str, int]:
        """Each process's highest resident memory: sampled RSS or the kernel's high-water mark."""
        peak = dict(self.peak_hwm)
        for sample in self.samples:
            for name, rss in sample.rss.items():
                peak[name] = max(peak.get(name, 0), rss)
        return peak

    def _read_hwm(self) -> None:
        for name, pid in self.pids.items():
            hwm = memory(pid)[1]
            self.peak_hwm[name] = max(self.peak_hwm.get(name, 0), hwm)

    async def _run(self) -> None:
        timeout = aiohttp.ClientTimeout(total=max(self.interval_s * 4, 2))
        async with aiohttp.ClientSession(timeout=timeout) as http:
            while True:
                began = time.monotonic()
                counters = await self._scrape(http)
                rss = {name: memory(pid)[0] for name, pid in self.pids.items()}
                cpu = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
                self._read_hwm()
                self.samples.append(Sample(began - self.started, rss, counters, cpu))
                await asyncio.sleep(max(0.0, self.interval_s - (time.monotonic() - began)))

    async def _scrape(self, http: aiohttp.ClientSession) -> dict[str, float]:
        async def one(name: str, url: str) -> tuple[str, str]:
            try:
                async with http.get(url) as resp:
                    return name, await resp.text()
            except (aiohttp.ClientError, TimeoutError):
                return name, ""

        texts = dict(await asyncio.gather(*(one(n, u) for n, u in self.metrics_urls.items())))
        counters: dict[str, float] = {"segmenter.published": 0.0}
        for name, text in texts.items():
            service = service_of(name)
            if service == "segmenter":
                found = parse_metrics(text, ("alimi_segmenter_recipients_total",))
                published = total(found, "alimi_segmenter_recipients_total", outcome="published")
                counters["segmenter.published"] += published
                counters[f"replica.{name}"] = published
            elif service.startswith("delivery-"):
                channel = service.removeprefix("delivery-")
                found = parse_metrics(text, ("alimi_deliveries_total",))
                for outcome in ("sent", "failed", "retrying", "fell_back"):
                    key = f"delivery.{channel}.{outcome}"
                    counters[key] = counters.get(key, 0.0) + total(
                        found, "alimi_deliveries_total", outcome=outcome
                    )
                counters[f"replica.{name}"] = sum(
                    total(found, "alimi_deliveries_total", outcome=outcome)
                    for outcome in ("sent", "failed", "fell_back")
                )
        receipts = parse_metrics(
            texts.get("receipts", ""),
            (
                "alimi_receipts_status_changes_total",
                "alimi_reports_total",
                "alimi_report_inbox_reports",
            ),
        )
        # reports received and not applied yet (-1 before the receipts service answers)
        counters["receipts.inbox"] = (
            total(receipts, "alimi_report_inbox_reports") if receipts else -1.0
        )
        counters["receipts.applied"] = total(receipts, "alimi_receipts_status_changes_total")
        counters["receipts.received"] = total(receipts, "alimi_reports_total", outcome="received")
        # reports found ahead of their attempt's record: kept in the inbox, applied later
        counters["receipts.waiting"] = total(receipts, "alimi_reports_total", outcome="waiting")
        if self.report_stats_url:
            try:
                async with http.get(self.report_stats_url) as resp:
                    stats = await resp.json()
                for key in ("sent", "retried", "dropped", "failed", "pending", "in_flight_batches"):
                    counters[f"sandbox.reports.{key}"] = float(stats.get(key, 0))
            except (aiohttp.ClientError, TimeoutError, ValueError):
                pass
        return counters


@dataclass
class ReceiptsRead:
    """What the notice's receipts say once everything is over."""

    counts: dict[str, dict[str, int]]  # channel -> status -> n (the notice's counters)
    latencies_s: array[float]  # sorted: approval -> provider acceptance, one per sent person
    first_sent_s: dict[str, float]  # channel -> seconds after approval
    last_sent_s: dict[str, float]
    last_write_s: float  # the last receipt write of any kind, seconds after approval
    sent_bins: dict[str, Counter[int]]  # channel -> bin index -> acceptances
    applied_bins: Counter[int]  # bin index -> reports applied (delivered/undelivered)
    first_applied_s: float | None
    last_applied_s: float | None
    read_s: float  # how long streaming them took


async def read_receipts(
    store: Store, notice_id: str, approved_at: datetime, bin_s: float
) -> ReceiptsRead:
    """Read the notice's counts, attempts and delivery reports once and summarise them."""
    started = time.perf_counter()
    counts = await notice_counters.of_notice(store, notice_id)
    latencies = array("d")
    first_sent: dict[str, float] = {}
    last_sent: dict[str, float] = {}
    sent_bins: dict[str, Counter[int]] = defaultdict(Counter)
    applied_bins: Counter[int] = Counter()
    first_applied: float | None = None
    last_applied: float | None = None
    last_write = 0.0
    cursor = store.attempts.find(
        {"notice_id": notice_id}, {"_id": 0, "channel": 1, "at": 1, "counts": 1}
    ).batch_size(1000)
    async for doc in cursor:
        channel = doc.get("channel") or "none"
        after = (doc["at"] - approved_at).total_seconds()
        last_write = max(last_write, after)
        sent = int((doc.get("counts") or {}).get("sent", 0))
        if not sent:
            continue
        latencies.extend([after] * sent)
        first_sent[channel] = min(first_sent.get(channel, after), after)
        last_sent[channel] = max(last_sent.get(channel, after), after)
        sent_bins[channel][int(after // bin_s)] += sent
    # The benchmark's database holds this one notice's reports.
    reports = store.delivery_reports.find({}, {"_id": 0, "applied_at": 1}).batch_size(5000)
    async for doc in reports:
        applied = (doc["applied_at"] - approved_at).total_seconds()
        last_write = max(last_write, applied)
        applied_bins[int(applied // bin_s)] += 1
        first_applied = applied if first_applied is None else min(first_applied, applied)
        last_applied = applied if last_applied is None else max(last_applied, applied)
    ordered = array("d", sorted(latencies))
    return ReceiptsRead(
        counts=counts.by_channel,
        latencies_s=ordered,
        first_sent_s=first_sent,
        last_sent_s=last_sent,
        last_write_s=last_write,
        sent_bins=dict(sent_bins),
        applied_bins=applied_bins,
        first_applied_s=first_applied,
        last_applied_s=last_applied,
        read_s=time.perf_counter() - started,
    )


def percentile(ordered: array[float] | list[float], p: float) -> float | None:
    """The ``p``-th percentile (nearest rank) of already sorted values."""
    if not ordered:
        return None
    rank = max(1, min(len(ordered), math.ceil(p / 100 * len(ordered))))
    return ordered[rank - 1]
