"""The Grafana dashboard and the alert rules name only metrics the code defines.

Metric names are read from the sources (every ``Counter``, ``Gauge``, ``Histogram`` of
``shared/`` and ``services/``), so renaming a metric without the dashboard or the rules
fails here rather than in an empty panel or an alert that can never fire.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "deploy/grafana"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))
RULES = ROOT / "deploy/prometheus/alerts.yml"
DEFINITION = re.compile(r'\b(Counter|Gauge|Histogram|Summary)\(\s*"(alimi_[a-z0-9_]+)"')
NAME = re.compile(r"\balimi[_:][a-zA-Z0-9_:]*")
# Series that Prometheus itself makes for each target.
PROMETHEUS_SERIES = {"up"}


def defined_series() -> set[str]:
    """Every series name the code's metrics expose."""
    names: set[str] = set()
    for source in [*ROOT.glob("shared/**/*.py"), *ROOT.glob("services/**/*.py")]:
        for kind, name in DEFINITION.findall(source.read_text()):
            names.add(name)
            base = name.removesuffix("_total")
            if kind == "Counter":
                names.add(f"{base}_created")
            if kind in ("Histogram", "Summary"):
                names.update(f"{name}_{suffix}" for suffix in ("bucket", "sum", "count", "created"))
    return names


def recorded_series() -> set[str]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return {rule["record"] for group in groups for rule in group["rules"] if "record" in rule}


def rule_exprs() -> list[str]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule["expr"] for group in groups for rule in group["rules"]]


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for panel in dashboard["panels"]:
        found.append(panel)
        found.extend(panels(panel) if panel.get("panels") else [])
    return found


def dashboard_exprs() -> list[str]:
    return [
        target["expr"]
        for path in DASHBOARDS
        for panel in panels(json.loads(path.read_text()))
        for target in panel.get("targets", [])
    ]


def test_when_the_sources_are_read__then_the_metrics_the_brief_lists_are_found() -> None:
    defined = defined_series()

    assert len(defined) > 30
    assert {
        "alimi_deliveries_total",
        "alimi_provider_request_seconds_bucket",
        "alimi_incident_deadline_seconds_left",
        "alimi_queue_messages_ready",
    } <= defined


def test_when_a_dashboard_is_loaded__then_it_is_json_with_unique_panels_on_the_datasource() -> None:
    provisioned = yaml.safe_load((GRAFANA / "provisioning/datasources/prometheus.yml").read_text())
    (datasource,) = provisioned["datasources"]

    assert DASHBOARDS, "no dashboards"
    for path in DASHBOARDS:
        dashboard = json.loads(path.read_text())
        assert dashboard["uid"] and dashboard["title"], path.name
        ids = [panel["id"] for panel in panels(dashboard)]
        assert len(ids) == len(set(ids)), path.name
        for panel in panels(dashboard):
            if panel["type"] == "row":
                continue
            assert panel["datasource"]["uid"] == datasource["uid"], panel["title"]
            assert panel["targets"], panel["title"]
            ref_ids = [target["refId"] for target in panel["targets"]]
            assert len(ref_ids) == len(set(ref_ids)), panel["title"]


def test_when_a_dashboard_queries_a_metric__then_the_code_or_a_recording_rule_defines_it() -> None:
    known = defined_series() | recorded_series()

    exprs = dashboard_exprs()
    assert exprs
    for expr in exprs:
        unknown = set(NAME.findall(expr)) - known
        assert not unknown, f"{expr}: {sorted(unknown)}"
        selected = set(re.findall(r"(?<![\w:])([a-zA-Z_][a-zA-Z0-9_]*)\{", expr))
        assert {n for n in selected if not n.startswith("alimi")} <= PROMETHEUS_SERIES, expr


def test_when_a_rule_names_a_metric__then_the_code_or_a_recording_rule_defines_it() -> None:
    known = defined_series() | recorded_series()

    for expr in rule_exprs():
        unknown = set(NAME.findall(expr)) - known
        assert not unknown, f"{expr}: {sorted(unknown)}"


def test_when_a_name_is_not_defined__then_the_check_notices() -> None:
    known = defined_series() | recorded_series()

    assert set(NAME.findall("sum(rate(alimi_deliveries_sent_total[5m]))")) - known
    assert set(NAME.findall("alimi:no_such_record")) - known
