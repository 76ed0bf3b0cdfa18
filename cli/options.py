"""The options every command takes, and what a command gets from them.

``--url``, ``--key``, ``--profile``, ``--output`` and ``--format`` may be
given before the command (``alimi --profile approver notice approve ...``) or
after it (``alimi notice approve ... --profile approver``); after wins.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import click
from rich.console import Console

from alimi_cli.client import Api
from alimi_cli.config import Settings, resolve
from alimi_cli.output import OUTPUTS, Output

F = TypeVar("F", bound=Callable[..., Any])


def _remember(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    if value is not None:
        chosen(ctx)[str(param.name)] = value
    return value


def chosen(ctx: click.Context) -> dict[str, Any]:
    """The common options given so far (``ctx.obj``, shared by a command and its groups)."""
    found: dict[str, Any] = ctx.ensure_object(dict)
    return found


_OPTIONS = (
    click.option(
        "--url",
        metavar="URL",
        expose_value=False,
        callback=_remember,
        help="The intake API [env ALIMI_URL; default http://127.0.0.1:8080].",
    ),
    click.option(
        "--key",
        metavar="API_KEY",
        expose_value=False,
        callback=_remember,
        help="API key, ak_<id>.<secret> [env ALIMI_API_KEY; prefer it or a profile: "
        "a command line is visible to other users of the machine].",
    ),
    click.option(
        "--profile",
        metavar="NAME",
        expose_value=False,
        callback=_remember,
        help="A profile of the config file [env ALIMI_PROFILE].",
    ),
    click.option(
        "-o",
        "--output",
        type=click.Choice(OUTPUTS),
        expose_value=False,
        callback=_remember,
        help="text for people (default), json for scripts.",
    ),
    click.option(
        "--format",
        "template",
        metavar="TEMPLATE",
        expose_value=False,
        callback=_remember,
        help="Print only fields of the answer, e.g. '{incident_id}'.",
    ),
)


def common(command: F) -> F:
    """Add the common options to ``command``."""
    for option in reversed(_OPTIONS):
        command = option(command)
    return command


@dataclass
class Session:
    """What a command works with: its settings, an API client and its output."""

    settings: Settings
    out: Output

    def api(self) -> Api:
        return Api(self.settings)

    def show(self, path: str, render: Callable[[Console, dict[str, Any]], None]) -> None:
        """GET ``path`` and print the answer: through ``render`` for people."""
        with self.api() as api:
            found = api.get(path)
        self.out.result(found, lambda console: render(console, found))


def session() -> Session:
    given = chosen(click.get_current_context())
    settings = resolve(url=given.get("url"), key=given.get("key"), profile=given.get("profile"))
    out = Output(mode=given.get("output", "text"), template=given.get("template"))
    return Session(settings, out)
