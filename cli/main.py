"""The ``alimi`` command: its groups, and the one place that turns errors into exit codes."""

from __future__ import annotations

import json
import sys
from typing import Any

import click
from rich.console import Console

from alimi_cli import dead, incidents, keys, notices, subjects, watch
from alimi_cli.client import version
from alimi_cli.errors import ApiError, CliError, Exit
from alimi_cli.options import common, session
from alimi_cli.output import Output


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(version(), "--version", prog_name="alimi")
@common
def cli() -> None:
    """Tell the people an incident touched, from the terminal: alimi talks to
    the Alimi intake API.

    \b
    Settings, first found wins:
      --url / --key            on the command line
      --profile NAME           a profile of the config file (or ALIMI_PROFILE)
      ALIMI_URL, ALIMI_API_KEY in the environment
      the config file's default profile
    The config file is $ALIMI_CONFIG or ~/.config/alimi/config.toml.

    \b
    Exit codes: 0 done; 1 the API refused the request or its job (4xx); 2
    usage, config or file error; 3 the API cannot be reached or failed, or a
    job failed (5xx); 4 done, but not everything succeeded (rejected rows,
    failed deliveries); 5 watch --timeout passed; 130 interrupted.
    """


@cli.group()
def config() -> None:
    """The settings alimi would use."""


@config.command("show")
@common
def config_show() -> None:
    """Show the API URL, the key's id (never its secret) and where each came from."""
    s = session()
    shown = {
        "url": s.settings.url,
        "url_from": s.settings.url_source,
        "key_id": s.settings.api_key.split(".", 1)[0] if s.settings.api_key else None,
        "key_from": s.settings.key_source,
        "config_file": str(s.settings.config_path),
    }

    def text(console: Console) -> None:
        console.print(f"url: {s.settings.url} (from {s.settings.url_source})")
        console.print(f"key: {s.settings.key_hint}")
        console.print(f"config file: {s.settings.config_path}")

    s.out.result(shown, text)


cli.add_command(subjects.subjects)
cli.add_command(incidents.incident)
cli.add_command(notices.notice)
cli.add_command(watch.watch)
cli.add_command(dead.dead)
cli.add_command(keys.keys)


def main(argv: list[str] | None = None) -> int:
    """Run ``alimi``; every end is one of :class:`Exit`'s codes (cli/README.md)."""
    err = Output().err
    given: dict[str, Any] = {}  # the common options, filled in as they are parsed
    try:
        result: Any = cli.main(args=argv, prog_name="alimi", standalone_mode=False, obj=given)
    except CliError as exc:
        if isinstance(exc, ApiError) and given.get("output") == "json":
            problem = {"status": exc.status, **exc.problem}
            click.echo(json.dumps(problem, ensure_ascii=False), err=True)
        else:
            for line in exc.lines():
                err.print(line, soft_wrap=True)
        return int(exc.code)
    except (click.exceptions.Abort, KeyboardInterrupt):
        err.print("interrupted")
        return Exit.INTERRUPTED
    except click.ClickException as exc:
        exc.show()
        return Exit.USAGE
    except BrokenPipeError:
        sys.stderr.close()  # the reader went away (alimi ... | head): nothing more to say
        return Exit.OK
    return int(result) if isinstance(result, int) else Exit.OK
