"""Slack Block Kit payloads for the staff channel: pure functions, no I/O.

Every payload has a plain ``text`` (notifications, screen readers, search) and
``blocks``. Only counts go to Slack, never a name or a phone number. The count
line reads the same in every payload and is easy to parse::

    Notice #1 completed: 980 reached (kakao 690, sms 290), 280 fell back from kakao,
    12 skipped, 0 failed, 950 delivered
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from alimi import states
from alimi.counters import NO_CHANNEL, NoticeCounts

SUMMARY_EVENT = "alimi_notice_summary"
HEADER_MAX = 150  # Slack's limit for a header's plain text
BUTTON_URL_MAX = 3000


@dataclass(frozen=True)
class NoticeView:
    """What staff see about a notice besides its counts."""

    notice_id: str
    incident_id: str
    incident_title: str
    severity: str
    seq: int
    people: int  # everyone in the notice's audience (recipients + merged + skipped)
    status_url: str


@dataclass(frozen=True)
class SlackMessage:
    text: str
    blocks: list[dict[str, Any]]
    metadata: dict[str, Any] | None = field(default=None)


def notice_view(incident: dict[str, Any], notice: dict[str, Any], people: int) -> NoticeView:
    """A view of the ``incidents`` and ``notices`` documents, and the notice's people."""
    return NoticeView(
        notice_id=str(notice["_id"]),
        incident_id=str(incident["_id"]),
        incident_title=str(incident.get("title") or incident["_id"]),
        severity=str(incident.get("severity") or "unknown"),
        seq=int(notice.get("seq") or 1),
        people=people,
        status_url=str(incident.get("status_url") or ""),
    )


def summary(counts: NoticeCounts) -> dict[str, Any]:
    """The numbers every payload shows, as plain data (also the message metadata)."""
    totals = counts.totals()
    channels = sorted(c for c in counts.by_channel if c != NO_CHANNEL)
    final = sum(n for status, n in totals.items() if status in states.FINAL_RECEIPT_STATES)
    return {
        "reached": counts.reached(),
        "reached_by_channel": {c: counts.reached(c) for c in channels if counts.reached(c)},
        "fell_back_from": dict(sorted(counts.fell_back.items())),
        "skipped": totals.get(states.SKIPPED, 0),
        "failed": totals.get(states.FAILED, 0),
        "delivered": totals.get(states.DELIVERED, 0),
        "undelivered": totals.get(states.UNDELIVERED, 0),
        "in_progress": counts.total() - final,
        # accepted by a provider, delivery not reported yet
        "awaiting_reports": totals.get(states.SENT, 0),
        "total": counts.total(),
    }


def counts_line(counts: NoticeCounts) -> str:
    """``980 reached (kakao 690, sms 290), 280 fell back from kakao, 12 skipped, ...``."""
    s = summary(counts)
    reached = f"{s['reached']} reached"
    if s["reached_by_channel"]:
        per = ", ".join(f"{c} {n}" for c, n in s["reached_by_channel"].items())
        reached += f" ({per})"
    fell_back = [f"{n} fell back from {c}" for c, n in s["fell_back_from"].items()] or [
        "0 fell back"
    ]
    return ", ".join(
        [
            reached,
            *fell_back,
            f"{s['skipped']} skipped",
            f"{s['failed']} failed",
            f"{s['delivered']} delivered",
        ]
    )


def started(view: NoticeView, counts: NoticeCounts) -> SlackMessage:
    """The parent message: posted once when sending begins."""
    text = (
        f"Notice #{view.seq} started for {_escape(view.incident_title)} "
        f"(severity {_escape(view.severity)}): {view.people} people in the audience; "
        f"so far {counts_line(counts)}"
    )
    return SlackMessage(text=_with_link(text, view), blocks=_parent_blocks(view, counts, "Sending"))


def parent_final(view: NoticeView, counts: NoticeCounts) -> SlackMessage:
    """The parent message once the notice is complete (``chat.update``)."""
    text = (
        f"Notice #{view.seq} completed for {_escape(view.incident_title)} "
        f"(severity {_escape(view.severity)}): {counts_line(counts)}"
    )
    return SlackMessage(
        text=_with_link(text, view), blocks=_parent_blocks(view, counts, "Completed")
    )


def milestone(view: NoticeView, counts: NoticeCounts, percent: int) -> SlackMessage:
    """A threaded reply: ``percent`` of the receipts are final."""
    text = f"Notice #{view.seq} at {percent}%: {counts_line(counts)}"
    blocks: list[dict[str, Any]] = [
        _section(f"*{percent}%* of notice #{view.seq}'s receipts are final"),
        *_channel_blocks(counts),
        _context(view),
    ]
    return SlackMessage(text=text, blocks=blocks)


REPORTS_AWAITED = "awaited"  # the summary follows the delivery reports still to come
REPORTS_IN = "in"  # every delivery report is in: the summary is final
REPORTS_CUT_OFF = "cut_off"  # the wait for the rest is over: the summary is final


def reports_note(counts: NoticeCounts, reports: str) -> str:
    """Where the delivery reports stand, in a sentence for the summary."""
    awaited = summary(counts)["awaiting_reports"]
    if reports == REPORTS_IN or (reports == REPORTS_AWAITED and not awaited):
        return "final: every delivery report is in"
    if reports == REPORTS_CUT_OFF:
        return f"final: {awaited} delivery reports never came (no longer awaited)"
    return f"{awaited} delivery reports awaited; this summary is updated as they come"


def completed(
    view: NoticeView, counts: NoticeCounts, reports: str = REPORTS_AWAITED
) -> SlackMessage:
    """The summary, a threaded reply with a machine-readable copy in ``metadata``; edited
    as delivery reports come in (``reports``: :data:`REPORTS_AWAITED`), then final."""
    s = summary(counts)
    note = reports_note(counts, reports)
    text = f"Notice #{view.seq} completed: {counts_line(counts)}; {note}"
    fell_back = sum(s["fell_back_from"].values())
    blocks: list[dict[str, Any]] = [
        _section(f"*Notice #{view.seq} completed* ({note})"),
        {
            "type": "section",
            "fields": [
                _field("Reached", s["reached"]),
                _field("Delivered", s["delivered"]),
                _field("Undelivered", s["undelivered"]),
                _field("Fell back", fell_back),
                _field("Skipped", s["skipped"]),
                _field("Failed", s["failed"]),
            ],
        },
        *_channel_blocks(counts),
        _context(view),
    ]
    payload = {
        "notice_id": view.notice_id,
        "incident_id": view.incident_id,
        "seq": view.seq,
        "final": note.startswith("final"),
    }
    metadata = {"event_type": SUMMARY_EVENT, "event_payload": payload | s}
    return SlackMessage(text=text, blocks=blocks, metadata=metadata)


def _parent_blocks(view: NoticeView, counts: NoticeCounts, status: str) -> list[dict[str, Any]]:
    s = summary(counts)
    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {"type": "plain_text", "text": _clip(view.incident_title, HEADER_MAX)},
        },
        {
            "type": "section",
            "fields": [
                _field("Severity", _escape(view.severity)),
                _field("Notice", f"#{view.seq} ({'first notice' if view.seq == 1 else 'update'})"),
                _field("Status", status),
                _field("People", view.people),
                _field("Reached", s["reached"]),
                _field("Delivered", s["delivered"]),
                _field("Fell back", sum(s["fell_back_from"].values())),
                _field("Skipped", s["skipped"]),
                _field("Failed", s["failed"]),
            ],
        },
        *_channel_blocks(counts),
    ]
    if view.status_url and len(view.status_url) <= BUTTON_URL_MAX:
        blocks.append(
            {
                "type": "actions",
                "elements": [
                    {
                        "type": "button",
                        "text": {"type": "plain_text", "text": "Status page"},
                        "url": view.status_url,
                        "action_id": "status_page",
                    }
                ],
            }
        )
    blocks.append(_context(view))
    return blocks


def _channel_blocks(counts: NoticeCounts) -> list[dict[str, Any]]:
    """One line per channel: reached, delivered, fell back, skipped, failed."""
    channels = sorted(set(counts.by_channel) | set(counts.fell_back))
    lines = []
    for c in channels:
        name = "no channel" if c == NO_CHANNEL else c
        lines.append(
            f"*{name}*: {counts.reached(c)} reached, "
            f"{counts.count(states.DELIVERED, c)} delivered, "
            f"{counts.fell_back.get(c, 0)} fell back, "
            f"{counts.count(states.SKIPPED, c)} skipped, "
            f"{counts.count(states.FAILED, c)} failed"
        )
    return [_section("\n".join(lines))] if lines else []


def _with_link(text: str, view: NoticeView) -> str:
    return f"{text}. Status page: {view.status_url}" if view.status_url else text


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def _field(label: str, value: object) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": f"*{label}*\n{value}"}


def _context(view: NoticeView) -> dict[str, Any]:
    return {
        "type": "context",
        "elements": [
            {"type": "mrkdwn", "text": f"notice `{view.notice_id}` · incident `{view.incident_id}`"}
        ],
    }


def _escape(text: str) -> str:
    """Slack's three control characters in mrkdwn and ``text``."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
