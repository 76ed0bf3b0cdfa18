"""The pipeline benchmark's table: what one run did, in the lines ``make bench`` prints."""

from __future__ import annotations

import json
from typing import Any


def _num(x: float | None, digits: int = 0) -> str:
    return "-" if x is None else f"{x:,.{digits}f}"


def table(results: dict[str, Any]) -> str:
    m, cfg, seed = results["machine"], results["config"], results["seed"]
    p, c, s = results["pipeline"], results["ceilings"], results["summary"]
    st = p["stages"]
    lat = p["latency_s"]
    rate = p["deliveries_per_s"]
    lines = [
        "",
        f"Alimi pipeline benchmark: N={cfg['n']:,}, sandbox {cfg['sandbox_latency_ms']:g} ms "
        "per call, no rate limit; "
        f"{cfg.get('segmenters', 1)} segmenter(s), {cfg.get('sms_delivery_processes', 1)} SMS "
        f"delivery process(es), {p.get('partitions') or '?'} partition(s)",
        f"machine: {m['nproc']} x {m['cpu_model']}, {m['memory_gib']} GiB; load average "
        f"{m['loadavg_start'][0]} at start, {m.get('loadavg_end', ['?'])[0]} at end",
        f"seeded {seed['subjects']:,} people in {seed['seconds']} s ({seed['how']})",
        ""
        if p.get("complete", True)
        else f"INCOMPLETE: stopped after {p['timeout_s']:.0f} s with "
        f"{p['accepted_by_provider']:,} of {p['people']:,} people accepted; "
        "the figures below are for what was done",
        "",
        f"{'end to end: approval -> last receipt write':<48}{_num(p['e2e_s'], 1):>12} s",
        f"{'approval -> last provider acceptance':<48}{_num(p['to_last_acceptance_s'], 1):>12} s",
        f"{'deliveries/s (accepted / that time)':<48}{_num(rate):>12}",
        f"{'approval -> notice marked completed':<48}{_num(p['notice_completed_s'], 1):>12} s",
        f"{'receipts':<48}{p['receipts']:>12,}  {json.dumps(p['counts'])}",
        "",
        f"{'stage':<48}{'per s':>12}",
        f"{'  segmenter: recipients published':<48}{_num(st['segmenter']['recipients_per_s']):>12}",
    ]
    for channel, d in st["delivery"].items():
        lines.append(
            f"{'  delivery ' + channel + ': recipients accepted':<48}"
            f"{_num(d['recipients_per_s']):>12}"
        )
    lines += [
        f"{'  receipts: delivery reports applied':<48}{_num(st['reports']['per_s']):>12}",
        f"{'  receipt writes, all services':<48}{_num(st['receipt_writes']['per_s']):>12}",
        "",
        f"{'approval -> acceptance p50 / p95 / p99':<48}"
        f"{_num(lat['p50'], 2)} / {_num(lat['p95'], 2)} / {_num(lat['p99'], 2)} s",
        "peak RSS MB: " + ", ".join(f"{k} {v:g}" for k, v in p["peak_rss_mb"].items()),
        "database operations per person: "
        + ", ".join(f"{k} {v:g}" for k, v in p.get("database_ops_per_person", {}).items()),
        "per replica (people, share, people/s while it worked, CPU ms per person): "
        + (
            ", ".join(
                f"{k} {v['people']:,} {v['share']:.0%} {_num(v['people_per_s'])}/s "
                f"{_num(v['cpu_ms_per_person'], 3)} ms"
                for k, v in p.get("replicas", {}).items()
                if v["share"] is not None
            )
            or "-"
        ),
        "CPU ms per person: "
        + ", ".join(
            f"{k} {v['cpu_ms_per_person']:g}"
            for k, v in p["cpu"].items()
            if v["cpu_ms_per_person"] is not None
        ),
        "",
        f"{'ceiling':<48}{'per s':>12}{'Alimi x':>10}",
        f"{'  broker: 1 persistent msg per recipient':<48}"
        f"{_num(c['broker']['msgs_per_s']):>12}{_num(s['vs_broker_per_msg'], 2):>10}",
        f"{'  store: insert_many of 1 final receipt each':<48}"
        f"{_num(c['store']['people_per_s']):>12}{_num(s['vs_store'], 2):>10}",
        f"{'  concurrent: 64 calls in flight, 1 insert each':<48}"
        f"{_num(c['concurrent']['recipients_per_s']):>12}{_num(s['vs_concurrent'], 2):>10}",
        f"{'  naive: one call + one insert per person':<48}"
        f"{_num(c['naive']['recipients_per_s'], 1):>12}{_num(s['vs_naive'], 1):>10}",
        f"database CPU per person: Alimi {_num(s['store_cpu_ms_per_person'], 3)} ms, "
        f"the store ceiling {_num(c['store'].get('server_cpu_ms_per_person'), 3)} ms",
        "",
        "targets",
    ]
    for t in s["targets"]:
        how = f" ({t['how']})" if t.get("how") else ""
        lines.append(
            f"  [{'met' if t['met'] else 'NOT met':>7}] {t['target']}: {t['measured']}{how}"
        )
    return "\n".join(lines)
