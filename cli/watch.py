"""``alimi watch INCIDENT_ID``: an incident's notices going out, live, until they are done."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import click
from rich.console import Console, Group
from rich.live import Live
from rich.text import Text

from alimi_cli import incidents
from alimi_cli.errors import CliError, Exit
from alimi_cli.notice_counts import (
    UNTIL,
    Rate,
    Totals,
    channel_rows,
    failures,
    is_done,
    totals,
    watched,
)
from alimi_cli.options import common, session
from alimi_cli.output import Output, duration, time_left

HEARTBEAT_S = 10.0  # without a terminal, a line at least this often, even if nothing changed
OUTAGE_S = 300.0  # how long the API may fail to answer before watch gives up (exit 3)


@click.command(short_help="A live view of an incident's notices until they are done.")
@click.argument("incident_id")
@click.option("--notice", "notice_id", metavar="NOTICE_ID", help="Watch only this notice.")
@click.option(
    "--until",
    type=click.Choice(UNTIL),
    default="completed",
    show_default=True,
    help="completed: every message handed to a provider (or given up on); "
    "delivered: also every delivery report back.",
)
@click.option(
    "--interval",
    type=click.FloatRange(0.2, 60),
    default=1.0,
    show_default=True,
    help="Seconds between two looks.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0),
    metavar="SECONDS",
    help="Give up after this long (exit 5) [default: wait as long as it takes].",
)
@common
def watch(
    incident_id: str, notice_id: str | None, until: str, interval: float, timeout: float | None
) -> int:
    """Follow an incident's notices until they are done: per channel how many
    were sent, delivered, failed, fell back or were skipped, the rate, the
    time to go, and the time left to the legal deadline.

    On a terminal the view updates in place; otherwise (a pipe, a log) a line
    is printed whenever the numbers change. Notices waiting for approval are
    not watched; if every notice waits, watch waits for the approval.

    Exits 0 when every watched notice is done, 4 if some messages failed or a
    notice failed, 5 when --timeout passes first, 3 if the API stops answering
    for five minutes.
    """
    s = session()
    out = s.out
    live = out.for_people and out.console.is_terminal
    lines = out.console if out.for_people else out.err  # plain progress lines go here
    rate = Rate()
    started = time.monotonic()
    found: dict[str, Any] = {}
    done = False
    with s.api() as api, _live(out.console, enabled=live) as view:
        last, last_at = "", started
        failing_since: float | None = None
        shown = Group()
        while True:
            try:
                found = api.get(f"/v1/incidents/{incident_id}")
            except CliError as exc:
                # An outage of the API is not the end of the sending: look again, for a while.
                now = time.monotonic()
                failing_since = now if failing_since is None else failing_since
                if exc.code != Exit.UNAVAILABLE or not found or now - failing_since > OUTAGE_S:
                    raise
                if timeout is not None and now - started >= timeout:
                    break
                note = f"{datetime.now():%H:%M:%S} the API does not answer; trying again"
                if view is not None:
                    view.update(Group(shown, Text(note, style="bold red")), refresh=True)
                else:
                    out.err.print(f"{note} ({exc.message.removeprefix('error: ')})", soft_wrap=True)
                time.sleep(interval)
                continue
            failing_since = None
            now = time.monotonic()
            if notice_id and not any(n["notice_id"] == notice_id for n in found["notices"]):
                raise CliError(
                    f"incident {incident_id} has no notice {notice_id}", code=Exit.REFUSED
                )
            notices = watched(found["notices"], notice_id)
            counted = totals(notices)
            rate.add(now, counted.finished)
            done = is_done(notices, until)
            if view is not None:
                shown = _view(found, notices, counted, rate, done=done)
                view.update(shown, refresh=True)
            else:
                counts, line = _line(found, notices, counted, rate)
                if counts != last or now - last_at >= HEARTBEAT_S:
                    lines.print(f"{datetime.now():%H:%M:%S} {line}", soft_wrap=True)
                    last, last_at = counts, now
            if done:
                break
            if timeout is not None and now - started >= timeout:
                break
            time.sleep(interval)
    return _finish(out, found, watched(found["notices"], notice_id), until, done=done)


@contextlib.contextmanager
def _live(console: Console, *, enabled: bool) -> Iterator[Live | None]:
    """A rich Live view that updates in place, or None when not on a terminal."""
    if not enabled:
        yield None
        return
    with Live(console=console, auto_refresh=False) as live:
        yield live


def _speed(rate: Rate, counted: Totals) -> str:
    if counted.waiting == 0:
        return "none waiting"
    per_s = rate.per_second
    eta = rate.eta_s(counted.waiting)
    speed = f"{per_s:.1f}/s" if per_s is not None else "-/s"
    return f"{counted.waiting} waiting, {speed}, ETA {duration(eta) if eta is not None else '-'}"


def _deadline(found: dict[str, Any]) -> str:
    """Time to the legal deadline, or how long ago it passed, and the regulator report due."""
    when = (
        f"OVERDUE: legal deadline passed {duration(found['seconds_left'])} ago"
        if found["seconds_left"] < 0
        else f"legal deadline {time_left(found['seconds_left'])}"
    )
    report = ""
    if found.get("regulator_report_due"):
        state = "overdue" if found["seconds_left"] < 0 else "due"
        report = f", regulator report {state} ({', '.join(found['regulator_report_due'])})"
    return (
        f"{when}{report}, notified {found['notified_share']:.0%} of {found['recipients']} "
        f"recipients ({found['people']} people)"
    )


def _view(
    found: dict[str, Any],
    notices: list[dict[str, Any]],
    counted: Totals,
    rate: Rate,
    *,
    done: bool,
) -> Group:
    header = Text.assemble(
        (found["title"], "bold"),
        f"  {found['incident_id']}  {found['status']}\n",
        f"{counted.finished} of {counted.recipients} finished, {_speed(rate, counted)}; ",
        (_deadline(found), "bold red" if found["seconds_left"] < 0 else ""),
    )
    table = incidents.notices_table(notices)
    waiting = [n for n in found["notices"] if n not in notices]
    footer = Text(
        "".join(f"#{n['seq']} {n['notice_id']} is {n['state']}\n" for n in waiting)
        + ("done" if done else "watching… (Ctrl-C stops watching, not the sending)"),
        style="dim",
    )
    return Group(header, table, footer)


def _line(
    found: dict[str, Any], notices: list[dict[str, Any]], counted: Totals, rate: Rate
) -> tuple[str, str]:
    """(what changed, the whole line): the line is printed when the first part changes."""
    if not notices:
        states = ", ".join(f"#{n['seq']} {n['state']}" for n in found["notices"])
        counts = f"no notice under way yet ({states})"
        return counts, f"{counts} | {_deadline(found)}"
    parts = []
    for notice in notices:
        channels = "; ".join(
            f"{channel} " + ", ".join(f"{n} {c}" for c, n in values.items() if n)
            for channel, values in channel_rows(notice)
            if any(values.values())
        )
        parts.append(f"#{notice['seq']} {notice['state']}" + (f" ({channels})" if channels else ""))
    counts = f"{' | '.join(parts)} | {counted.finished}/{counted.recipients} finished"
    return counts, f"{counts}, {_speed(rate, counted)} | {_deadline(found)}"


def _finish(
    out: Output, found: dict[str, Any], notices: list[dict[str, Any]], until: str, *, done: bool
) -> int:
    problems = failures(notices)

    def text(console: Console) -> None:
        if not console.is_terminal:
            console.print(incidents.notices_table(notices or found["notices"]))
        if done:
            what = "delivered" if until == "delivered" else "done"
            console.print(f"Every watched notice is {what}.")

    out.result(found, text)
    if not done:
        out.err.print("error: --timeout passed before the notices were done")
        return Exit.TIMED_OUT
    for problem in problems:
        out.err.print(f"warning: {problem}")
    return Exit.PARTIAL if problems else Exit.OK
