"""The pipeline benchmark's figures: derived numbers, the JSON and the RESULT line (the
table is in ``table.py``, the chart in ``chart.py``)."""

from __future__ import annotations

import itertools
import json
import os
import platform
from datetime import datetime
from pathlib import Path
from typing import Any

from sampling import MB, ReceiptsRead, Watcher, percentile, service_of

ACCEPTED = ("sent", "delivered", "undelivered")  # the provider took the message
REPORTED = ("delivered", "undelivered")
RSS_LIMIT_MB = 250
# The targets for one 2-core machine with everything on it (bench/README.md).
TIME_TARGETS = ((100_000, 60.0), (1_000_000, 600.0))
VS_CONCURRENT_TARGET = 1.5
DATABASE_CPU_MS_TARGET = 0.5
DATABASE = "mongo"  # the process name of the database server in the figures


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def machine() -> dict[str, Any]:
    model = ""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            model = next(
                (
                    line.split(":", 1)[1].strip()
                    for line in cpuinfo
                    if line.startswith("model name")
                ),
                "",
            )
    except OSError:
        pass
    mem_kb = 0
    try:
        with open("/proc/meminfo") as meminfo:
            mem_kb = next(int(line.split()[1]) for line in meminfo if line.startswith("MemTotal"))
    except (OSError, StopIteration):
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model or platform.processor(),
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "loadavg_start": loadavg(),
    }


def _rate(count: float, seconds: float | None) -> float | None:
    return round(count / seconds, 1) if seconds and seconds > 0 else None


def pipeline_results(
    *,
    n: int,
    incident_id: str,
    notice: dict[str, Any],
    approved_at: datetime,
    approved_mono: float,
    read: ReceiptsRead,
    watcher: Watcher,
    bin_s: float,
) -> dict[str, Any]:
    progress = notice.get("progress") or {}
    accepted = len(read.latencies_s)
    to_last_sent = max(read.last_sent_s.values(), default=None)
    segmented_s = (
        (notice["segmented_at"] - approved_at).total_seconds()
        if notice.get("segmented_at")
        else None
    )
    handled = sum(
        n for channel, by in read.counts.items() if channel != "none" for n in by.values()
    )
    applied = sum(by.get(status, 0) for by in read.counts.values() for status in REPORTED)
    channels = {}
    for channel in sorted(read.sent_bins):
        count = sum(read.counts[channel].get(s, 0) for s in ACCEPTED)
        window = read.last_sent_s[channel] - read.first_sent_s[channel]
        channels[channel] = {
            "accepted": count,
            "first_s": round(read.first_sent_s[channel], 2),
            "last_s": round(read.last_sent_s[channel], 2),
            "recipients_per_s": _rate(count, window),
        }
    reports_window = (
        read.last_applied_s - read.first_applied_s
        if read.last_applied_s is not None and read.first_applied_s is not None
        else None
    )
    lat = read.latencies_s
    return {
        "incident_id": incident_id,
        "notice_id": notice["_id"],
        "state": notice.get("state"),
        "people": n,
        "recipients_published": progress.get("recipients_published", 0),
        "deduplicated": progress.get("deduplicated", 0),
        "skipped": progress.get("skipped_no_phone", 0) + progress.get("skipped_unreachable", 0),
        "receipts": sum(sum(by.values()) for by in read.counts.values()),
        "counts": read.counts,
        "accepted_by_provider": accepted,
        "e2e_s": round(read.last_write_s, 2),
        "notice_completed_s": (
            round((notice["completed_at"] - approved_at).total_seconds(), 2)
            if notice.get("completed_at")
            else None
        ),
        "to_last_acceptance_s": round(to_last_sent, 2) if to_last_sent is not None else None,
        "deliveries_per_s": _rate(accepted, to_last_sent),
        "stages": {
            "segmenter": {
                "recipients": progress.get("recipients_published", 0),
                "seconds": round(segmented_s, 2) if segmented_s is not None else None,
                "recipients_per_s": _rate(progress.get("recipients_published", 0), segmented_s),
                "window": "approval to segmented_at (includes the outbox relay's hop)",
            },
            "delivery": channels,
            "reports": {
                "applied": applied,
                "first_s": read.first_applied_s and round(read.first_applied_s, 2),
                "last_s": read.last_applied_s and round(read.last_applied_s, 2),
                "per_s": _rate(applied, reports_window),
            },
            "receipt_writes": {
                "writes": handled + applied,
                "per_s": _rate(handled + applied, read.last_write_s),
                "how": "one per person handled (delivery's claim) plus one per report applied,"
                " over approval to the last write; attempts add one per batch",
            },
        },
        "latency_s": {
            "what": "approval (notice.approved_at) to provider acceptance (receipt.sent_at)",
            "p50": _round(percentile(lat, 50)),
            "p95": _round(percentile(lat, 95)),
            "p99": _round(percentile(lat, 99)),
            "max": _round(lat[-1] if lat else None),
        },
        "peak_rss_mb": {name: round(b / MB, 1) for name, b in sorted(watcher.peaks().items())},
        "cpu": _cpu(watcher.cpu_used(approved_mono - 1.0), accepted, read.last_write_s),
        "replicas": _replicas(watcher, approved_mono),
        "reports": {
            "received": int(watcher.latest().get("receipts.received", 0)),
            "found_ahead_of_their_attempt": int(watcher.latest().get("receipts.waiting", 0)),
            "retried_by_sandbox": int(watcher.latest().get("sandbox.reports.retried", 0)),
            "dropped_by_sandbox": int(watcher.latest().get("sandbox.reports.dropped", 0)),
        },
        "partitions": progress.get("partitions"),
        "receipts_read_s": round(read.read_s, 1),
        "series": _series(read, watcher, approved_mono, bin_s),
    }


def _cpu(used: dict[str, float], people: int, seconds: float) -> dict[str, Any]:
    """CPU each process spent on the notice: seconds, share of a core, and per person.

    ``people_per_cpu_s`` is how many people one replica could handle per second
    with a whole core to itself and nothing else in its way: the per-replica
    rate the scale-out estimate starts from.
    """
    out: dict[str, Any] = {}
    for name, cpu_s in sorted(used.items()):
        out[name] = {
            "cpu_s": round(cpu_s, 1),
            "cores": round(cpu_s / seconds, 2) if seconds > 0 else None,
            "cpu_ms_per_person": round(1000 * cpu_s / people, 3) if people else None,
            "people_per_cpu_s": round(people / cpu_s) if cpu_s > 0 else None,
        }
    return out


def _replicas(watcher: Watcher, approved_mono: float) -> dict[str, Any]:
    """Each segmenter and delivery process on its own: people it handled, its share of
    its service's, its rate while it worked (first to last sample in which its count
    grew) and its CPU per person — the per-replica figures a scale-out starts from."""
    samples = [s for s in watcher.samples if s.t >= approved_mono - 1.0]
    if len(samples) < 2:
        return {}
    cpu = watcher.cpu_used(approved_mono - 1.0)
    names = sorted(
        k.removeprefix("replica.") for k in samples[-1].counters if k.startswith("replica.")
    )
    handled_by = {
        name: samples[-1].counters[f"replica.{name}"]
        - samples[0].counters.get(f"replica.{name}", 0)
        for name in names
    }
    by_service: dict[str, float] = {}
    for name in names:
        by_service[service_of(name)] = by_service.get(service_of(name), 0.0) + handled_by[name]
    out: dict[str, Any] = {}
    for name in names:
        key = f"replica.{name}"
        # the sampling intervals in which its count grew
        grew = [
            (before.t, after.t)
            for before, after in itertools.pairwise(samples)
            if after.counters.get(key, 0) > before.counters.get(key, 0)
        ]
        window = (grew[-1][1] - grew[0][0]) if grew else None
        handled = handled_by[name]
        cpu_s = cpu.get(name, 0.0)
        out[name] = {
            "people": int(handled),
            "share": round(handled / by_service[service_of(name)], 3)
            if by_service[service_of(name)]
            else None,
            "people_per_s": _rate(handled, window),
            "cpu_ms_per_person": round(1000 * cpu_s / handled, 3) if handled else None,
            "people_per_cpu_s": round(handled / cpu_s) if cpu_s > 0 else None,
        }
    return out


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 3)


def _series(
    read: ReceiptsRead, watcher: Watcher, approved_mono: float, bin_s: float
) -> dict[str, Any]:
    """Throughput over time (seconds after approval) and memory over time."""
    last_bin = max(
        [max(b, default=0) for b in read.sent_bins.values()] + [max(read.applied_bins, default=0)]
    )
    bins = list(range(last_bin + 1))
    samples = watcher.samples
    segmenter = []
    for before, after in itertools.pairwise(samples):
        dt = after.t - before.t
        delta = after.counters.get("segmenter.published", 0) - before.counters.get(
            "segmenter.published", 0
        )
        segmenter.append([round(after.t - approved_mono, 2), round(delta / dt, 1) if dt else 0])
    return {
        "bin_s": bin_s,
        "t": [round(b * bin_s, 2) for b in bins],
        "accepted_per_s": {
            channel: [counts.get(b, 0) / bin_s for b in bins]
            for channel, counts in read.sent_bins.items()
        },
        "reports_applied_per_s": [read.applied_bins.get(b, 0) / bin_s for b in bins],
        "segmenter_published_per_s": segmenter,
        "rss_mb": {
            "t": [round(s.t - approved_mono, 2) for s in samples],
            **{
                name: [round(s.rss.get(name, 0) / MB, 1) for s in samples]
                for name in (samples[0].rss if samples else {})
            },
        },
    }


def summarise(results: dict[str, Any]) -> dict[str, Any]:
    """Ratios and targets; stored in ``results['summary']`` too."""
    p = results["pipeline"]
    c = results["ceilings"]
    rate = p["deliveries_per_s"] or 0.0
    broker = c["broker"]["msgs_per_s"] or 0.0
    store = c["store"]["people_per_s"] or 0.0
    concurrent = c["concurrent"]["recipients_per_s"] or 0.0
    naive = c["naive"]["recipients_per_s"] or 0.0
    rss = p["peak_rss_mb"]
    alimi_rss = {k: v for k, v in rss.items() if k != DATABASE}
    database_cpu = (p["cpu"].get(DATABASE) or {}).get("cpu_ms_per_person")
    summary: dict[str, Any] = {
        "deliveries_per_s": rate,
        "vs_broker_per_msg": round(rate / broker, 3) if broker else None,
        "vs_store": round(rate / store, 3) if store else None,
        "vs_concurrent": round(rate / concurrent, 2) if concurrent else None,
        "vs_naive": round(rate / naive, 2) if naive else None,
        "store_cpu_ms_per_person": database_cpu,
        "segmenter_peak_rss_mb": rss.get("segmenter"),
        "largest_alimi_rss_mb": max(alimi_rss.values(), default=None),
    }
    n = p["people"]
    targets = []
    complete = p.get("complete", True)
    for target_n, limit_s in TIME_TARGETS:
        if complete:
            measured = p["e2e_s"] * target_n / n
            how = "measured" if n == target_n else f"projected linearly from N={n:,}"
        else:  # the run was cut short: at best its delivery rate
            measured = target_n / rate if rate else float("inf")
            how = f"projected from the deliveries/s of a run cut short at N={n:,}"
        targets.append(
            {
                "target": f"{target_n:,} people end to end in < {limit_s:g} s",
                "measured": round(measured, 1),
                "how": how,
                "met": measured < limit_s,
            }
        )
    targets.append(
        {
            "target": f"deliveries/s >= {VS_CONCURRENT_TARGET:g} x the concurrent baseline",
            "measured": summary["vs_concurrent"],
            "met": (summary["vs_concurrent"] or 0) >= VS_CONCURRENT_TARGET,
        }
    )
    targets.append(
        {
            "target": f"database CPU per person <= {DATABASE_CPU_MS_TARGET:g} ms",
            "measured": database_cpu,
            "how": f"at N={n:,}",
            "met": database_cpu is not None and database_cpu <= DATABASE_CPU_MS_TARGET,
        }
    )
    biggest = max(alimi_rss.items(), key=lambda kv: kv[1], default=("-", None))
    targets.append(
        {
            "target": f"every Alimi process < {RSS_LIMIT_MB} MB RSS",
            "measured": biggest[1],
            "how": f"largest: {biggest[0]}, at N={n:,}",
            "met": biggest[1] is not None and biggest[1] < RSS_LIMIT_MB,
        }
    )
    summary["targets"] = targets
    results["summary"] = summary
    return summary


def result_line(summary: dict[str, Any]) -> str:
    def fmt(x: Any) -> str:
        return "nan" if x is None else str(x)

    return (
        f"RESULT deliveries_per_s={fmt(summary['deliveries_per_s'])} "
        f"vs_broker_per_msg={fmt(summary['vs_broker_per_msg'])} "
        f"vs_store={fmt(summary['vs_store'])} "
        f"vs_concurrent={fmt(summary['vs_concurrent'])} "
        f"vs_naive={fmt(summary['vs_naive'])} "
        f"store_cpu_ms_per_person={fmt(summary['store_cpu_ms_per_person'])} "
        f"segmenter_peak_rss_mb={fmt(summary['segmenter_peak_rss_mb'])}"
    )


def write_json(results: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(results, indent=2, ensure_ascii=False, default=str) + "\n")
