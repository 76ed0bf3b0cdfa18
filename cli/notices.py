"""``alimi notice post|preview|approve|halt|resume``."""

from __future__ import annotations

from typing import Any

import click
from rich.console import Console
from rich.panel import Panel
from rich.text import Text

from alimi_cli import documents, jobs
from alimi_cli.options import common, session
from alimi_cli.output import add_row, table

STATE_SENTENCES = {
    "approved": "is approved: sending starts within seconds",
    "halted": "is halted: nobody else is sent to until it is resumed",
}


@click.group(short_help="Notices: post, preview, approve, halt, resume.")
def notice() -> None:
    """Notices: each message round of an incident, approved by a second person."""


@notice.command(short_help="Post a progress update (a later notice) of an incident.")
@click.argument("incident_id")
@click.option(
    "-f",
    "--file",
    "path",
    required=True,
    metavar="FILE",
    help="The update as YAML (- reads standard input).",
)
@common
def post(incident_id: str, path: str) -> None:
    """Post a progress update of an incident: a later notice, and its new status.

    The file is POST /v1/incidents/{id}/notices' body as YAML (see
    examples/update.yaml). Like every notice it waits for a second person's
    approval; so does its status, which the incident takes only then.
    """
    s = session()
    body = documents.load(path)
    with s.api() as api:
        created = api.post(f"/v1/incidents/{incident_id}/notices", body)

    def text(console: Console) -> None:
        console.print(
            f"Notice #{created['seq']} {created['notice_id']} of incident {incident_id} "
            "waits for a second person's approval:\n"
            f"  alimi notice preview {created['notice_id']}\n"
            f"  alimi notice approve {created['notice_id']}",
        )

    s.out.result(created, text)


@notice.command(short_help="Who would get what, before approval.")
@click.argument("notice_id")
@common
def preview(notice_id: str) -> None:
    """Show who would get what: people per channel, the skipped, each language's message.

    The API counts the whole audience as a job, followed here (a progress bar).
    """
    s = session()
    with s.api() as api:
        job = api.post(f"/v1/notices/{notice_id}/preview")
        found = jobs.follow(api, job, s.out.err, label="counting people")["result"]
    s.out.result(found, lambda console: _preview(console, found))


def _preview(console: Console, found: dict[str, Any]) -> None:
    audience = found["audience"]
    console.print(
        f"Notice {found['notice_id']} ({found['state']}) is for {audience['people']} people: "
        f"{audience['recipients']} messages (recipients), {audience['merged']} merged onto a "
        f"number they share, {sum(audience['skipped'].values())} skipped",
    )
    people = table("audience", "people")
    for channel, n in sorted(audience["messages_by_channel"].items()):
        add_row(people, f"recipients by {channel}", n)
    if audience.get("merged"):
        add_row(people, "merged (share a recipient's number)", audience["merged"])
    for reason, n in sorted(audience["skipped"].items()):
        add_row(people, f"skipped: {reason.replace('_', ' ')}", n)
    console.print(people)
    if found.get("incident_status"):
        console.print(
            f"Approving it also sets the incident's status to {found['incident_status']} "
            "(on the public status page too)."
        )
    for locale, message in sorted(found["messages"].items()):
        title = (
            f"{locale}: {message['sms_type']} {message['euc_kr_bytes']} bytes, "
            f"AlimTalk {message['kakao_template_code']}"
        )
        text = Text(message["text"])
        console.print(Panel(text, title=Text(title), title_align="left", expand=False))


def _transition(action: str, notice_id: str) -> None:
    s = session()
    with s.api() as api:
        changed = api.post(f"/v1/notices/{notice_id}/{action}")

    def text(console: Console) -> None:
        state = changed["state"]
        sentence = STATE_SENTENCES.get(state, f"is {state}")
        console.print(f"Notice {changed['notice_id']} {sentence}.")

    s.out.result(changed, text)


@notice.command()
@click.argument("notice_id")
@common
def approve(notice_id: str) -> None:
    """Approve a notice: it is sent. Needs another key than the one that wrote it."""
    _transition("approve", notice_id)


@notice.command()
@click.argument("notice_id")
@common
def halt(notice_id: str) -> None:
    """Stop a notice being sent; people not yet reached are not sent to."""
    _transition("halt", notice_id)


@notice.command()
@click.argument("notice_id")
@common
def resume(notice_id: str) -> None:
    """Send a halted notice to everyone not yet told."""
    _transition("resume", notice_id)
