"""Request bodies written as YAML files (``incident.yaml``, ``update.yaml``).

A file is the API's JSON body written as YAML (JSON is YAML too), so the API
validates it and names each bad field; here only what YAML itself gets wrong
is caught: syntax (with the line and column), a document that is not a
mapping, and values JSON cannot carry. Times stay the text that was written
(``discovered_at: 2026-11-28T09:00:00+09:00`` is sent as written, not turned
into another layout), so the API's own message about a bad one applies.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

from alimi_cli.errors import CliError


class _Loader(yaml.SafeLoader):
    """Safe YAML whose timestamps and dates stay strings, as JSON would have them."""


def _as_written(loader: yaml.SafeLoader, node: yaml.Node) -> str:
    return str(loader.construct_scalar(node))  # type: ignore[arg-type]


_Loader.add_constructor("tag:yaml.org,2002:timestamp", _as_written)


def read_text(path: str) -> tuple[str, str]:
    """(text, name to show) of ``path``; ``-`` reads standard input."""
    if path == "-":
        return sys.stdin.read(), "standard input"
    try:
        return Path(path).read_text(encoding="utf-8"), path
    except FileNotFoundError:
        raise CliError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise CliError(f"{path}: is a directory, not a file") from None
    except UnicodeDecodeError as exc:
        raise CliError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise CliError(f"{path}: cannot read it: {exc.strerror}") from None


def parse(text: str, name: str) -> dict[str, Any]:
    """The one mapping in ``text``; :class:`CliError` saying where it is wrong."""
    try:
        documents = list(yaml.load_all(text, Loader=_Loader))  # a SafeLoader
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "?"
        what = " ".join(p for p in (exc.context, exc.problem) if p)
        raise CliError(f"{name}: not valid YAML at {where}: {what}") from None
    except yaml.YAMLError as exc:
        raise CliError(f"{name}: not valid YAML: {exc}") from None
    documents = [d for d in documents if d is not None]
    if not documents:
        raise CliError(f"{name}: the file is empty")
    if len(documents) > 1:
        raise CliError(f"{name}: holds {len(documents)} YAML documents (---); write one")
    [document] = documents
    if not isinstance(document, dict):
        kind = type(document).__name__
        raise CliError(f"{name}: the document must be a mapping (field: value), not a {kind}")
    _check_json(document, name, "")
    return document


def load(path: str) -> dict[str, Any]:
    text, name = read_text(path)
    return parse(text, name)


def _check_json(value: Any, name: str, where: str) -> None:
    """Refuse what JSON cannot carry: keys that are not text, values such as binary."""
    if isinstance(value, dict):
        for key, item in value.items():
            inner = f"{where}.{key}" if where else str(key)
            if not isinstance(key, str):
                raise CliError(f"{name}: {inner}: a field name must be text, not {key!r}")
            _check_json(item, name, inner)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_json(item, name, f"{where}[{index}]")
    elif value is not None and not isinstance(value, str | int | float | bool):
        raise CliError(f"{name}: {where}: {type(value).__name__} values cannot be sent")
