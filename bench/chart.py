"""The pipeline benchmark's chart: throughput, latency and memory over one run (a PNG)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from report import RSS_LIMIT_MB


def chart(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    p = results["pipeline"]
    series = p["series"]
    fig, (ax1, ax2, ax3) = plt.subplots(3, 1, figsize=(10, 12))
    cfg, m = results["config"], results["machine"]
    fig.suptitle(
        f"Alimi: one notice to {cfg['n']:,} people ({m['nproc']} x {m['cpu_model']}); "
        f"{p['deliveries_per_s'] or 0:,.0f} deliveries/s"
    )
    t = series["t"]
    for channel, values in series["accepted_per_s"].items():
        ax1.plot(t, values, label=f"delivery {channel}: accepted by the provider")
    ax1.plot(t, series["reports_applied_per_s"], label="receipts: delivery reports applied")
    seg = series["segmenter_published_per_s"]
    if seg:
        ax1.plot([x for x, _ in seg], [y for _, y in seg], label="segmenter: published", alpha=0.7)
    c = results["ceilings"]
    if c["broker"]["msgs_per_s"]:
        ax1.axhline(c["broker"]["msgs_per_s"], ls="--", c="grey", lw=1)
        ax1.annotate("raw broker, 1 msg per recipient", (0, c["broker"]["msgs_per_s"]), fontsize=8)
    if c["store"]["people_per_s"]:
        ax1.axhline(c["store"]["people_per_s"], ls=":", c="grey", lw=1)
        store = c["store"]["people_per_s"]
        ax1.annotate("raw store, 1 receipt insert each", (0, store), fontsize=8)
    if c["concurrent"]["recipients_per_s"]:
        ax1.axhline(c["concurrent"]["recipients_per_s"], ls="-.", c="grey", lw=1)
        ax1.annotate(
            "concurrent script, 64 calls in flight",
            (0, c["concurrent"]["recipients_per_s"]),
            fontsize=8,
        )
    ax1.set_xlabel("seconds after approval")
    ax1.set_ylabel("people per second")
    ax1.set_title("throughput over time")
    ax1.set_xlim(left=0)
    ax1.legend(fontsize=8, loc="upper right")

    _latency_panel(ax2, results)

    rss = series["rss_mb"]
    for name, values in rss.items():
        if name not in ("t", "mongo"):  # the database's own memory is in the JSON
            ax3.plot(rss["t"], values, label=name)
    ax3.axhline(RSS_LIMIT_MB, ls="--", c="red", lw=1)
    ax3.set_xlabel("seconds after approval")
    ax3.set_ylabel("RSS (MB)")
    mongo = p["peak_rss_mb"].get("mongo")
    ax3.set_title(
        "resident memory per Alimi process"
        + (f" (MongoDB-wire server's peak: {mongo:,.0f} MB)" if mongo else "")
    )
    ax3.legend(fontsize=8, ncol=3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _latency_panel(ax: Any, results: dict[str, Any]) -> None:
    lat = results["pipeline"]["latency_s"]
    names = ["p50", "p95", "p99", "max"]
    values = [lat[k] or 0 for k in names]
    bars = ax.barh(names, values, color=["#4c72b0", "#dd8452", "#c44e52", "#8c8c8c"])
    for bar, value in zip(bars, values, strict=True):
        ax.annotate(f"{value:,.2f} s", (value, bar.get_y() + bar.get_height() / 2), va="center")
    ax.invert_yaxis()
    ax.set_xlabel("seconds from approval to provider acceptance")
    ax.set_title("latency per person, approval to acceptance")
