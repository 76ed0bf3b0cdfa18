"""``alimi incident create|show``."""

from __future__ import annotations

from typing import Any

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from alimi_cli import documents
from alimi_cli.notice_counts import CHANNEL_COLUMNS, channel_rows
from alimi_cli.options import common, session
from alimi_cli.output import add_row, duration, table, time_left


@click.group()
def incident() -> None:
    """Incidents: what happened, and the notices that tell people."""


@incident.command()
@click.option(
    "-f",
    "--file",
    "path",
    required=True,
    metavar="FILE",
    help="The incident and its first notice, as YAML (- reads standard input).",
)
@common
def create(path: str) -> None:
    """Create an incident and its first notice from a YAML file.

    The file is POST /v1/incidents' body written as YAML (see
    examples/incident.yaml and cli/README.md); its discovered_at may be now or
    a time ago (-2h, -30m, -1d6h). The notice waits for a second person's
    approval: alimi notice approve NOTICE_ID.
    """
    s = session()
    body = documents.load_incident(path)
    with s.api() as api:
        created = api.post("/v1/incidents", body)

    def text(console: Console) -> None:
        console.print(f"Incident {created['incident_id']} created.")
        overdue_line(console, created)
        console.print(
            f"Its first notice {created['notice_id']} waits for a second person's approval:\n"
            f"  alimi notice preview {created['notice_id']}\n"
            f"  alimi notice approve {created['notice_id']}",
        )
        console.print(f"Status page: {created['status_url']}")

    s.out.result(created, text)


@incident.command()
@click.argument("incident_id")
@common
def show(incident_id: str) -> None:
    """Show an incident: its deadline, notices and their receipts by channel."""
    session().show(f"/v1/incidents/{incident_id}", render)


def render(console: Console, found: dict[str, Any]) -> None:
    console.print(
        Text.assemble(
            (found["title"], "bold"),
            f"  {found['incident_id']}  {found['severity']}, {found['status']}",
        )
    )
    console.print(
        f"Legal deadline {found['deadline']} ({time_left(found['seconds_left'])}); "
        f"{found['people']} people; notified {found['notified']} of {found['recipients']} "
        f"recipients ({found['notified_share']:.0%})",
    )
    overdue_line(console, found)
    if found.get("regulator_report_due"):
        due = ", ".join(found["regulator_report_due"])
        note = found.get("regulator_report_note") or f"The regulator must be told ({due})."
        console.print(Text(note, style="bold red" if found.get("overdue") else "bold"))
    console.print(f"Status page: {found['status_url']}")
    console.print(notices_table(found["notices"]))


def overdue_line(console: Console, answer: dict[str, Any]) -> None:
    """The API's sentence on a passed legal deadline (overdue, and by how much), if it passed."""
    if answer.get("overdue"):
        note = answer.get("deadline_note") or f"Overdue by {duration(answer['overdue_by_s'])}."
        console.print(Text(note, style="bold red"))


def notices_table(notices: list[dict[str, Any]]) -> Table:
    """Each notice's receipts per channel (see alimi_cli.notice_counts for the columns)."""
    found = table("notice", "state", "channel", *CHANNEL_COLUMNS)
    for notice in notices:
        rows = channel_rows(notice) or [("-", {})]
        for i, (channel, values) in enumerate(rows):
            add_row(
                found,
                f"#{notice['seq']} {notice['notice_id']}" if i == 0 else "",
                notice["state"] if i == 0 else "",
                channel,
                *[values.get(c, "") for c in CHANNEL_COLUMNS],
            )
    return found
