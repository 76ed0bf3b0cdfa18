"""docker-compose.yml and the monitoring file it includes, against the Compose
specification (check-jsonschema's vendored schema, offline), and Prometheus's view
of them: every Alimi container is scraped on its ops port.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
PROMETHEUS_CONFIG = ROOT / "deploy/prometheus/prometheus.yml"
GRAFANA_DATASOURCES = ROOT / "deploy/grafana/provisioning/datasources/prometheus.yml"
NOT_SCRAPED = {"rabbitmq", "mongo", "sandbox"}  # the sandbox serves no /metrics


def check_jsonschema() -> str:
    path = Path(sys.executable).parent / "check-jsonschema"
    found = str(path) if path.exists() else shutil.which("check-jsonschema")
    assert found, "check-jsonschema is missing: it is a development dependency (make install)"
    return found


def validate(*files: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [check_jsonschema(), "--builtin-schema", "vendor.compose-spec", *map(str, files)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def load(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(path.read_text())
    return loaded


def included() -> list[Path]:
    return [COMPOSE.parent / entry for entry in load(COMPOSE).get("include", [])]


def all_services() -> dict[str, dict[str, Any]]:
    """The services of docker-compose.yml and of the files it includes."""
    services = dict(load(COMPOSE)["services"])
    for path in included():
        services |= load(path)["services"]
    return services


def test_when_compose_is_validated__then_it_and_its_includes_follow_the_compose_spec() -> None:
    files = included()
    assert files and all(f.exists() for f in files), files

    result = validate(COMPOSE, *files)

    assert result.returncode == 0, result.stdout + result.stderr


# Mistakes the schema must catch: (what, text in docker-compose.yml, replaced by).
MISTAKES = [
    ("a misspelt depends_on condition", "condition: service_healthy", "condition: healthy"),
    ("a misspelt service key", "    stop_grace_period: 30s", "    stop_grace: 30s"),
]


def test_when_compose_has_a_mistake__then_validation_fails(tmp_path: Path) -> None:
    text = COMPOSE.read_text()
    broken = []
    for i, (mistake, replace, by) in enumerate(MISTAKES):
        assert replace in text, f"cannot make {mistake}: {replace!r} is no longer in the file"
        path = tmp_path / f"broken-{i}" / "docker-compose.yml"
        path.parent.mkdir()
        path.write_text(text.replace(replace, by, 1))
        broken.append(path)

    result = validate(*broken)  # one run for all: the tool takes a while to start

    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "Schema validation errors were encountered" in output
    for path, (mistake, _, _) in zip(broken, MISTAKES, strict=True):
        assert f"{path}::" in output, mistake


def test_when_prometheus_runs_in_compose__then_it_scrapes_each_alimi_service_on_its_ops_port() -> (
    None
):
    services = all_services()
    expected = {
        name: f"{name}:{service['environment']['ALIMI_OPS_PORT']}"
        for name, service in services.items()
        if name not in NOT_SCRAPED and "ALIMI_OPS_PORT" in service.get("environment", {})
    }
    jobs = {
        job["job_name"]: [t for c in job["static_configs"] for t in c["targets"]]
        for job in load(PROMETHEUS_CONFIG)["scrape_configs"]
    }

    assert set(expected) == {
        "intake",
        "segmenter",
        "delivery-sms",
        "delivery-kakao",
        "delivery-slack",
        "receipts",
    }
    for name, target in expected.items():
        assert jobs.get(name) == [target], name


def test_when_compose_runs_monitoring__then_grafana_waits_for_a_healthy_prometheus() -> None:
    services = all_services()
    prometheus, grafana = services["prometheus"], services["grafana"]
    datasource = load(GRAFANA_DATASOURCES)["datasources"][0]

    assert "healthcheck" in prometheus and "healthcheck" in grafana
    assert grafana["depends_on"] == {"prometheus": {"condition": "service_healthy"}}
    assert datasource["url"] == "http://prometheus:9090"
    assert "./prometheus:/etc/prometheus:ro" in prometheus["volumes"]
    assert "./grafana/provisioning:/etc/grafana/provisioning:ro" in grafana["volumes"]
    for path in included():  # mounts are relative to the included file's folder
        for service in load(path)["services"].values():
            for volume in service.get("volumes", []):
                source = volume.split(":")[0]
                if source.startswith("./"):
                    assert (path.parent / source).is_dir(), volume
