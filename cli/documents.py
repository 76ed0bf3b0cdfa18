"""Request bodies written as YAML files (``incident.yaml``, ``update.yaml``).

A file is the API's JSON body written as YAML (JSON is YAML too), so the API
validates it and names each bad field; here only what YAML itself gets wrong
is caught: syntax (with the line and column), a document that is not a
mapping, and values JSON cannot carry. Times stay the text that was written
(``discovered_at: 2026-11-28T09:00:00+09:00`` is sent as written, not turned
into another layout), so the API's own message about a bad one applies; but
an incident file's ``discovered_at`` may also say when relative to now
(``now``, ``-2h``, ``-30m``, ``-1d6h``: :func:`load_incident`), sent as that
moment in this machine's time zone.
"""

from __future__ import annotations

import re
import sys
from datetime import datetime, timedelta
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


# A time ago: "-" then days, hours, minutes, seconds, in that order, at least one.
_AGO = re.compile(r"-(?=[0-9])(?:([0-9]+)d)?(?:([0-9]+)h)?(?:([0-9]+)m)?(?:([0-9]+)s)?", re.I)
# What reads as relative without being one of the forms above: "+2h", "now-2h", "2h ago".
_RELATIVE_LOOKING = re.compile(r"[+-]|now|[0-9]+\s*[a-z]+$|.*\bago$", re.I)
RELATIVE_FORMS = "now, a time ago such as -2h, -30m or -1d6h"


def load_incident(path: str, *, now: datetime | None = None) -> dict[str, Any]:
    """An incident file, its ``discovered_at`` made an RFC 3339 time if written relative to
    ``now`` (this machine's clock and time zone unless given)."""
    text, name = read_text(path)
    document = parse(text, name)
    written = document.get("discovered_at")
    if isinstance(written, str):
        document["discovered_at"] = relative_time(written, name, now=now)
    return document


def relative_time(written: str, name: str, *, now: datetime | None = None) -> str:
    """``now`` or a time ago as that moment (RFC 3339, ``now``'s zone); anything else that
    reads as relative (``+2h``, ``now-2h``) is a :class:`CliError`; the rest stays as written."""
    text = written.strip()
    at = now if now is not None else datetime.now().astimezone()
    if text.lower() == "now":
        return at.isoformat(timespec="seconds")
    ago = _AGO.fullmatch(text)
    if ago is not None and any(ago.groups()):
        days, hours, minutes, seconds = (int(part or 0) for part in ago.groups())
        try:
            moment = at - timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
        except OverflowError:
            raise CliError(f"{name}: discovered_at: {written!r} is too long ago") from None
        return moment.isoformat(timespec="seconds")
    if _RELATIVE_LOOKING.match(text):
        raise CliError(
            f"{name}: discovered_at: {written!r} is not a time alimi understands: write "
            f"{RELATIVE_FORMS}, or an RFC 3339 time with its zone, such as"
            " 2026-11-28T09:00:00+09:00"
        )
    return written
