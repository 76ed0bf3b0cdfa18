"""What a command prints: text for people, JSON or a template for scripts.

* ``--output text`` (the default): tables and sentences on standard output
  (rich; plain when standard output is not a terminal or ``NO_COLOR`` is set).
* ``--output json``: the API's answer as JSON, nothing else on standard output.
* ``--format TEMPLATE``: a Python format string over the answer, such as
  ``'{incident_id}'`` or ``'{notices[0].notice_id}'`` (``.key`` and ``[key]``
  both look up a field, ``[0]`` or ``.0`` an item of a list; a list or mapping
  prints as JSON). For scripts: ``NOTICE=$(alimi ... --format '{notice_id}')``.

Errors always go to standard error, so standard output stays parseable.
"""

from __future__ import annotations

import json
import os
import string
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import click
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from alimi.compliance import duration  # the API's deadline sentences count time alike
from alimi_cli.errors import CliError

OUTPUTS = ("text", "json")
PLAIN_WIDTH = 120


class _Fields(string.Formatter):
    """``str.format`` over JSON data, where ``.name`` is a key and lists take ``[0]``/``.0``."""

    def get_field(self, field_name: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> Any:
        first, rest = _split(field_name)
        value: Any = kwargs[str(first)]
        for _is_attribute, key in rest:
            if isinstance(value, list):
                value = value[int(key)]
            elif isinstance(value, dict):
                value = value[str(key)]
            else:
                raise KeyError(key)
        return value, first

    def format_field(self, value: Any, format_spec: str) -> str:
        if isinstance(value, dict | list):
            return json.dumps(value, ensure_ascii=False)
        if value is None:
            return ""
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(format(value, format_spec))


def _split(field_name: str) -> tuple[Any, Any]:
    import _string  # the parser str.format itself uses

    return _string.formatter_field_name_split(field_name)  # type: ignore[attr-defined]


def fill(template: str, data: Any) -> str:
    """``template`` filled from ``data`` (a mapping); :class:`CliError` naming what is wrong."""
    if not isinstance(data, dict):
        raise CliError("--format needs an answer that is a JSON object; use --output json")
    try:
        return _Fields().vformat(template, (), data)
    except (KeyError, IndexError) as exc:
        raise CliError(
            f"--format {template!r}: the answer has no {exc}; its fields: {', '.join(data)}"
        ) from None
    except (ValueError, TypeError) as exc:
        raise CliError(f"--format {template!r}: {exc}") from None


def console(*, stderr: bool) -> Console:
    """A console without markup: text from the API (a title with [brackets]) prints as it is.

    Not on a terminal (a pipe, a log), tables get 120 columns unless ``COLUMNS`` says.
    """
    found = Console(stderr=stderr, markup=False, highlight=False)
    if not found.is_terminal and not os.environ.get("COLUMNS"):
        found.width = PLAIN_WIDTH
    return found


@dataclass
class Output:
    mode: str = "text"
    template: str | None = None
    console: Console = field(default_factory=lambda: console(stderr=False))
    err: Console = field(default_factory=lambda: console(stderr=True))

    @property
    def for_people(self) -> bool:
        return self.mode == "text" and self.template is None

    def result(self, data: Any, text: Callable[[Console], None]) -> None:
        """Print ``data`` as asked: through ``text`` for people, else as JSON or the template."""
        if self.template is not None:
            click.echo(fill(self.template, data))
        elif self.mode == "json":
            click.echo(json.dumps(data, ensure_ascii=False, indent=2))
        else:
            text(self.console)

    def note(self, message: str) -> None:
        """A remark for people, on standard error so that it never mixes with results."""
        if self.for_people:
            self.err.print(message)


def time_left(seconds: float) -> str:
    """Time to a deadline in words: ``71h 59m left`` or ``overdue by 3d 2h``."""
    if seconds < 0:
        return f"overdue by {duration(seconds)}"
    return f"{duration(seconds)} left"


def table(*headers: str, title: str | None = None) -> Table:
    """A table as every command prints one; add rows with :func:`add_row`."""
    return Table(*headers, title=title, title_justify="left", box=box.SIMPLE_HEAD)


def add_row(found: Table, *values: object) -> None:
    """A row of plain text: values from the API are never read as rich markup."""
    found.add_row(*(Text("" if v is None else str(v)) for v in values))
