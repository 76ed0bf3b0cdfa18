"""What the image and every service install is what runs: no development tooling."""

from __future__ import annotations

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
