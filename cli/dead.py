"""``alimi dead list|replay NOTICE_ID``: the people given up on after the last retry."""

from __future__ import annotations

from typing import Any

import click
from rich.console import Console

from alimi_cli import jobs
from alimi_cli.options import common, session
from alimi_cli.output import add_row, table


@click.group(short_help="Dead letters: people given up on after the last retry.")
def dead() -> None:
    """Dead letters: deliveries given up on after the last retry, and their replay."""


@dead.command("list")
@click.argument("notice_id")
@common
def list_(notice_id: str) -> None:
    """Show a notice's dead letters: people per channel, and the last errors."""
    session().show(f"/v1/notices/{notice_id}/dead-letters", _list)


def _list(console: Console, found: dict[str, Any]) -> None:
    if not found["total"]:
        console.print(f"Notice {found['notice_id']} has no dead letters.")
        return
    console.print(
        f"Notice {found['notice_id']} ({found['state']}): {found['total']} people given up on "
        f"after the last retry. Replay them with: alimi dead replay {found['notice_id']}",
    )
    channels = table("channel", "people")
    for channel, n in sorted(found["by_channel"].items()):
        add_row(channels, channel, n)
    console.print(channels)
    if found["last_errors"]:
        errors = table("channel", "people", "last at", "error", title="Last errors")
        for e in found["last_errors"]:
            add_row(errors, e["channel"], e["count"], e["last_at"], e["error"])
        console.print(errors)


@dead.command()
@click.argument("notice_id")
@common
def replay(notice_id: str) -> None:
    """Send a notice's dead letters again, as first attempts (nobody is told twice).

    The API replays them as a job, followed here to its end (a progress bar).
    """
    s = session()
    with s.api() as api:
        job = api.post(f"/v1/notices/{notice_id}/dead-letters/replay")
        done = jobs.follow(api, job, s.out.err, label="replaying")["result"]

    def text(console: Console) -> None:
        channels = sorted(done["recipients_by_channel"].items())
        by_channel = ", ".join(f"{n} by {c}" for c, n in channels)
        console.print(
            f"Replayed {done['batches']} batch(es), {done['recipients']} people"
            + (f" ({by_channel})" if by_channel else "")
            + ".",
        )
        if done["more_remain"]:
            console.print("More dead letters remain: run it again.")

    s.out.result(done, text)
