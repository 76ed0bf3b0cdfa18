"""What the image and every service install is what runs: no development tooling."""

from __future__ import annotations

import fnmatch
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_when_alimi_is_built__then_the_local_stack_is_not_in_it() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = project["tool"]["setuptools"]["packages"]
    folders = project["tool"]["setuptools"]["package-dir"].values()

    assert "alimi_devstack" not in packages
    assert not any(folder.startswith("deploy") for folder in folders)
    for folder in folders:  # nothing under a shipped package starts processes for development
        assert not (ROOT / folder / "devstack.py").exists(), folder
    dev = tomllib.loads((ROOT / "deploy/devstack/pyproject.toml").read_text())
    assert dev["tool"]["setuptools"]["packages"] == ["alimi_devstack"]


CLI_ONLY = {"click", "rich", "httpx", "pyyaml"}


def _names(lock: str) -> set[str]:
    found = re.findall(r"^([A-Za-z0-9._-]+)==", lock, re.M)
    return {re.sub(r"[-_.]+", "-", name).lower() for name in found}


def _requirement(spec: str) -> str:
    name = re.match(r"[A-Za-z0-9._-]+", spec)
    assert name is not None, spec
    return re.sub(r"[-_.]+", "-", name.group()).lower()


def test_when_the_image_is_built__then_the_cli_dependencies_are_an_extra_it_leaves_out() -> None:
    """The image installs the runtime closure of ``[project] dependencies`` only
    (tests/integration/test_manifests.py derives it as the Dockerfile does)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = {_requirement(d) for d in project["dependencies"]}
    cli = {_requirement(d) for d in project["optional-dependencies"]["cli"]}

    assert cli == CLI_ONLY
    assert not runtime & CLI_ONLY
    assert "jinja2" in runtime


def test_when_developing__then_the_lock_holds_the_cli_extra_and_jinja2_with_hashes() -> None:
    lock = (ROOT / "requirements.lock").read_text()
    assert CLI_ONLY | {"jinja2", "markupsafe"} <= _names(lock)
    block = lock.split("\njinja2==", 1)[1].split("# via", 1)[0]
    assert "--hash=sha256:" in block
    assert "--extra cli" in (ROOT / "Makefile").read_text()


def test_when_alimi_is_installed__then_the_status_page_templates_come_with_it() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = project["tool"]["setuptools"]["package-data"]["alimi_intake"]
    templates = sorted((ROOT / "services/intake/templates").iterdir())
    assert templates
    for template in templates:
        relative = template.relative_to(ROOT / "services/intake").as_posix()
        assert any(fnmatch.fnmatch(relative, p) for p in patterns), relative
