"""The docs name only what exists: every file, module and metric a README or the
architecture notes mention in code quotes, and every relative link.

A cheap check that keeps the prose honest when code moves: a renamed module, a
metric dropped or a file split leaves a name behind that this test finds.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = sorted(
    p
    for p in [ROOT / "README.md", *ROOT.glob("docs/*.md"), *ROOT.glob("*/**/README.md")]
    if not {".venv", "node_modules", ".alimi-data", "tests"} & set(p.relative_to(ROOT).parts)
)
CODE_DIRS = ("shared", "services")  # where metrics are defined

QUOTED = re.compile(r"`([^`\n]+)`")
FILE = re.compile(r"^[\w./-]*\w\.(?:py|js|html|css|ya?ml|toml|lock|json|sh)$")
MODULE = re.compile(r"^alimi(?:_[a-z]+)?(?:\.[a-z_][a-z0-9_]*)+$")
# Queue and exchange names look like modules (``alimi.delivery.sms``: the namespace, then
# the queue); the common package has no module of a service's name.
QUEUE = re.compile(r"^alimi\.(?:intake|segmenter|delivery|receipts|sandbox|retry|dead|events)\b")
METRIC = re.compile(r"^(alimi_[a-z0-9_]+)(?:\{[^}]*\})?$")
LINK = re.compile(r"\]\(([^)\s]+)\)")
METRIC_SUFFIXES = ("_total", "_bucket", "_count", "_sum", "_created")


@cache
def code_text() -> str:
    return "\n".join(
        p.read_text(errors="replace") for d in CODE_DIRS for p in (ROOT / d).rglob("*.py")
    )


@cache
def all_files() -> frozenset[str]:
    return frozenset(
        p.relative_to(ROOT).as_posix()
        for p in ROOT.rglob("*")
        if p.is_file() and ".venv" not in p.parts and ".git" not in p.parts
    )


PACKAGE_DIRS = {"alimi/": "shared/alimi/", "alimi_cli/": "cli/"} | {
    f"alimi_{service}/": f"services/{service}/"
    for service in ("intake", "segmenter", "delivery", "receipts", "sandbox")
}


def file_exists(name: str, doc: Path) -> bool:
    """A path from the doc's folder or the root (a package's name standing for its
    folder: ``alimi_intake/jobs.py``), or a bare name anywhere in the tree."""
    for package, folder in PACKAGE_DIRS.items():
        if name.startswith(package):
            name = folder + name.removeprefix(package)
    if (doc.parent / name).exists() or (ROOT / name).exists():
        return True
    if "/" in name:
        return any(f.endswith("/" + name) for f in all_files())
    return any(f.rsplit("/", 1)[-1] == name for f in all_files())


def module_exists(dotted: str) -> bool:
    """``alimi.x``, ``alimi_intake.y``; a trailing part may be an attribute (``alimi.x.f``)."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            if importlib.util.find_spec(".".join(parts[:cut])) is None:
                continue
        except ModuleNotFoundError:
            continue
        found: object = importlib.import_module(".".join(parts[:cut]))
        for attribute in parts[cut:]:
            if not hasattr(found, attribute):
                return False
            found = getattr(found, attribute)
        return True
    return False


def metric_exists(name: str) -> bool:
    if importlib.util.find_spec(name) is not None or (ROOT / "deploy" / name).exists():
        return True  # a package (alimi_intake) or the dev stack's
    base = name
    for suffix in METRIC_SUFFIXES:
        if base.endswith(suffix) and f'"{base}"' not in code_text():
            base = base.removesuffix(suffix)
    return f'"{base}"' in code_text()


def names(doc: Path) -> list[tuple[str, str]]:
    text = doc.read_text()
    found = []
    for quoted in QUOTED.findall(text):
        word = quoted.strip()
        if FILE.match(word) and not word.startswith(("http", "/", "~", "-")):
            found.append(("file", word))
        elif MODULE.match(word) and not QUEUE.match(word):
            found.append(("module", word))
        elif m := METRIC.match(word):
            found.append(("metric", m.group(1)))
    for target in LINK.findall(text):
        path = target.split("#", 1)[0]
        if path and "://" not in path and not path.startswith("mailto:"):
            found.append(("link", path))
    return found


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_file_module_metric_and_link_a_doc_names_exists(doc: Path) -> None:
    missing = []
    for kind, name in names(doc):
        if kind == "file":
            ok = file_exists(name, doc)
        elif kind == "module":
            ok = module_exists(name)
        elif kind == "metric":
            ok = metric_exists(name)
        else:
            ok = (doc.parent / name).exists()
        if not ok:
            missing.append(f"{kind} {name}")
    assert not missing, f"{doc.relative_to(ROOT)} names what does not exist: {missing}"


def test_when_a_doc_names_a_file_that_is_gone__then_the_check_sees_it() -> None:
    doc = ROOT / "services" / "segmenter" / "README.md"
    assert not file_exists("channels.py", doc)
    assert file_exists("batching.py", doc)
    assert not module_exists("alimi.no_such_module")
    assert not metric_exists("alimi_no_such_metric_total")
    assert metric_exists("alimi_notices_completed_total")
