"""How far an incident's notices have got, read from ``GET /v1/incidents/{id}``.

Pure functions over the API's answer, so ``watch`` and ``incident show``
print the same numbers and the tests need no server.

Per notice and channel (``counts_by_channel``; ``none`` holds the people
skipped before a channel was chosen):

* **sent**: a provider accepted the message; its delivery report is awaited;
* **delivered**: the report came back delivered;
* **failed**: given up on (``failed``), or reported not delivered (``undelivered``);
* **fell back**: people this channel could not reach, handed to the next one;
* **skipped**: not sent to: no phone, no reachable channel, or the notice was halted;
* **waiting**: claimed, retrying or handed over, not yet final.

A notice is *finished* once it is ``completed``, ``halted`` or ``failed``;
*delivered* once it is finished and no message is still ``sent`` (awaiting
its report). Notices still ``pending_approval`` are not
watched: nothing happens to them until someone approves them.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

CHANNEL_COLUMNS = ("sent", "delivered", "failed", "fell back", "skipped", "waiting")
FINISHED_STATES = frozenset({"completed", "halted", "failed"})
NOT_STARTED_STATES = frozenset({"pending_approval"})
FINAL_STATUSES = ("sent", "delivered", "undelivered", "failed", "halted")
NO_CHANNEL = "none"
UNTIL = ("completed", "delivered")
Notice = dict[str, Any]  # one of GET /v1/incidents/{id}'s notices

_COLUMN_STATUSES = {
    "sent": ("sent",),
    "delivered": ("delivered",),
    "failed": ("failed", "undelivered"),
    "skipped": ("skipped", "halted"),
    "waiting": ("claimed", "retrying", "fell_back"),
}


def channel_rows(notice: dict[str, Any]) -> list[tuple[str, dict[str, int]]]:
    """(channel, {column: count}) for each channel the notice has receipts on."""
    by_channel: dict[str, dict[str, int]] = notice.get("counts_by_channel") or {}
    fell_back: dict[str, int] = notice.get("fell_back") or {}
    rows = []
    for channel in sorted(set(by_channel) | set(fell_back), key=lambda c: (c == NO_CHANNEL, c)):
        statuses = by_channel.get(channel, {})
        values = {
            column: sum(statuses.get(s, 0) for s in wanted)
            for column, wanted in _COLUMN_STATUSES.items()
        }
        values["fell back"] = fell_back.get(channel, 0)
        rows.append((channel, {c: values[c] for c in CHANNEL_COLUMNS}))
    return rows


@dataclass(frozen=True)
class Totals:
    recipients: int  # people handed to a channel so far
    finished: int  # of them, those whose receipt is final
    awaiting_report: int  # sent, no delivery report yet
    failed: int  # failed or undelivered

    @property
    def waiting(self) -> int:
        return max(self.recipients - self.finished, 0)


def totals(notices: Iterable[dict[str, Any]]) -> Totals:
    recipients = finished = awaiting = failed = 0
    for notice in notices:
        recipients += int(notice.get("recipients") or 0)
        for channel, statuses in (notice.get("counts_by_channel") or {}).items():
            if channel == NO_CHANNEL:
                continue
            finished += sum(statuses.get(s, 0) for s in FINAL_STATUSES)
            awaiting += statuses.get("sent", 0)
            failed += statuses.get("failed", 0) + statuses.get("undelivered", 0)
    return Totals(recipients, finished, awaiting, failed)


def watched(notices: Sequence[dict[str, Any]], notice_id: str | None = None) -> list[Notice]:
    """The notices under way or over (all of them, or the one named)."""
    started = [n for n in notices if n["state"] not in NOT_STARTED_STATES]
    return [n for n in started if notice_id is None or n["notice_id"] == notice_id]


def is_done(notices: Sequence[dict[str, Any]], until: str) -> bool:
    """Every watched notice is finished (and, ``until="delivered"``, reported on)."""
    if not notices:
        return False
    if any(n["state"] not in FINISHED_STATES for n in notices):
        return False
    if until == "delivered":
        return totals(notices).awaiting_report == 0
    return True


def failures(notices: Sequence[dict[str, Any]]) -> list[str]:
    """What went wrong, in words: failed notices and failed deliveries."""
    found = []
    for n in notices:
        if n["state"] == "failed":
            found.append(f"notice #{n['seq']} {n['notice_id']} failed")
        failed = totals([n]).failed
        if failed:
            found.append(f"notice #{n['seq']}: {failed} message(s) failed or were not delivered")
    return found


@dataclass
class Rate:
    """Messages finished per second over the last ``window_s``, from successive polls."""

    window_s: float = 10.0
    samples: deque[tuple[float, int]] = field(default_factory=deque)

    def add(self, at: float, finished: int) -> None:
        self.samples.append((at, finished))
        while len(self.samples) > 2 and at - self.samples[0][0] > self.window_s:
            self.samples.popleft()

    @property
    def per_second(self) -> float | None:
        if len(self.samples) < 2:
            return None
        (t0, n0), (t1, n1) = self.samples[0], self.samples[-1]
        if t1 <= t0:
            return None
        return max(n1 - n0, 0) / (t1 - t0)

    def eta_s(self, waiting: int) -> float | None:
        """Seconds until ``waiting`` more are finished at this rate; None if unknown."""
        if waiting == 0:
            return 0.0
        rate = self.per_second
        return waiting / rate if rate else None
