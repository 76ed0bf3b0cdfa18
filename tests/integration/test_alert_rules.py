"""The Prometheus files in deploy/prometheus, checked by Prometheus's own promtool.

``promtool`` comes with Debian's ``prometheus`` package (``.ci/ensure-prometheus``).
Without it these tests skip, or fail when the ``CI`` variable is set.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "deploy/prometheus"
RULES = PROMETHEUS / "alerts.yml"
RULE_TESTS = PROMETHEUS / "alerts.test.yml"
CONFIG = PROMETHEUS / "prometheus.yml"
DASHBOARDS = sorted((ROOT / "deploy/grafana/dashboards").glob("*.json"))
SEVERITIES = {"critical", "warning"}


def promtool() -> str:
    path = shutil.which(os.environ.get("PROMTOOL", "promtool"))
    if path is None:
        message = "promtool is not installed (bash .ci/ensure-prometheus installs it)"
        if os.environ.get("CI"):
            pytest.fail(f"{message}; CI is set, so this fails instead of skipping")
        pytest.skip(message)
    return path


def run_promtool(*args: str, cwd: Path = PROMETHEUS) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool(), *args], capture_output=True, text=True, timeout=60, cwd=cwd)


def alerts() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def test_when_promtool_checks_the_rules__then_they_are_valid() -> None:
    result = run_promtool("check", "rules", RULES.name)

    assert result.returncode == 0, result.stdout + result.stderr


def test_when_promtool_checks_the_config__then_it_and_its_rule_files_are_valid() -> None:
    result = run_promtool("check", "config", CONFIG.name)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 1 rule files found" in result.stdout + result.stderr


def test_when_the_rule_unit_tests_run__then_every_case_passes() -> None:
    result = run_promtool("test", "rules", RULE_TESTS.name)

    assert result.returncode == 0, result.stdout + result.stderr


def test_when_an_alert_is_defined__then_it_says_how_bad_and_what_happened() -> None:
    for rule in alerts():
        name = rule["alert"]
        assert name.startswith("Alimi"), name
        assert rule["labels"]["severity"] in SEVERITIES, name
        assert {"summary", "description"} <= set(rule["annotations"]), name
        assert "for" in rule, f"{name} has no for: a single bad sample would page"


def test_when_an_alert_is_defined__then_its_tests_show_it_firing_and_not_firing() -> None:
    cases: dict[str, set[bool]] = {}
    for test in yaml.safe_load(RULE_TESTS.read_text())["tests"]:
        for case in test.get("alert_rule_test", []):
            cases.setdefault(case["alertname"], set()).add(bool(case.get("exp_alerts")))

    for rule in alerts():
        assert cases.get(rule["alert"]) == {True, False}, rule["alert"]


def test_when_a_dashboard_query_is_checked_by_promtool__then_it_is_valid_promql(
    tmp_path: Path,
) -> None:
    exprs = [
        target["expr"].replace("$__rate_interval", "1m")
        for dashboard in DASHBOARDS
        for panel in json.loads(dashboard.read_text())["panels"]
        for target in panel.get("targets", [])
    ]
    assert exprs, "no dashboard queries found"
    as_rules = {
        "groups": [
            {
                "name": "dashboard-queries",
                "rules": [
                    {"record": f"dashboard:query_{i}", "expr": e} for i, e in enumerate(exprs)
                ],
            }
        ]
    }
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump(as_rules))

    result = run_promtool("check", "rules", str(path), cwd=tmp_path)

    assert result.returncode == 0, result.stdout + result.stderr
