"""A notice's life after it is written: four-eyes approval, halt and resume, preview.

* **approve**: a notice is created ``pending_approval``; a key with
  ``notices:approve`` approves it — not the key that created it, unless that
  key is explicitly allowed to approve its own notices. Approval writes the
  state, the incident's new status if the notice asks for one (a progress
  update's ``status``: until then the incident and its public page keep the
  old one), the ``notice.approved`` outbox event and the audit entry in one
  transaction; the outbox relay announces it and the segmenter starts.
* **halt**: an approved, segmenting or sending notice stops: the segmenter
  stops publishing, and delivery gives everyone still waiting a ``halted``
  receipt instead of a message, within a second or two.
* **resume**: a halted notice is approved again from the start of its
  audience: people already told are skipped by their final receipts, the
  ``halted`` ones are sent to.
* **preview**: who would get what, counted over the whole audience: a job
  (:mod:`alimi_intake.jobs`), reporting the people counted so far.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from pymongo.asynchronous.client_session import AsyncClientSession

from alimi import dedupe, ids, messages, notice_states, partitions, render, sms_kind, templates
from alimi.api_keys import ApiKey
from alimi.audience import AudienceSpec, to_query
from alimi.channel_choice import DEFAULT_PREFERENCE, Unreachable, route
from alimi.problems import ProblemError
from alimi.store import Store
from alimi_intake import audit, repository

PREVIEW_REPORT_EVERY = 10_000  # people counted between two progress reports

# Told how many people a preview has counted so far.
Counted = Callable[[int], Awaitable[None]]

# More writes of a transition, in its transaction: (session, the notice after, now) ->
# details for the audit entry.
Also = Callable[[AsyncClientSession, dict[str, Any], datetime], Awaitable[dict[str, Any]]]


def _now() -> datetime:
    return datetime.now(UTC)


async def find(store: Store, notice_id: str) -> dict[str, Any]:
    notice = await store.notices.find_one({"_id": notice_id})
    if notice is None:
        raise ProblemError(404, "Not Found", "no notice with that id")
    return notice


def _outbox(notice: dict[str, Any], now: datetime) -> dict[str, Any]:
    event = messages.NoticeApproved(
        notice_id=notice["_id"], incident_id=notice["incident_id"], approved_at=now
    )
    return {
        "_id": ids.new_id("evt"),
        "exchange": "events",
        "routing_key": event.kind,
        "body": event.model_dump_json(),
        "published": False,
        "created_at": now,
    }


async def _transition(
    store: Store,
    key: ApiKey,
    notice: dict[str, Any],
    *,
    move: str,
    changes: dict[str, Any],
    action: str,
    unset: dict[str, str] | None = None,
    announce: bool = False,
    also: Also | None = None,
) -> dict[str, Any]:
    """Make ``move`` (:mod:`alimi.notice_states`) on ``notice`` with ``changes``, audited,
    atomically.

    The state it moves from is read inside the transaction, so the audit
    entry names the state the change really left, even when a write conflict
    with the segmenter's checkpoint writes made the transaction run again.
    """
    now = changes.get("updated_at") or _now()

    async def work(session: AsyncClientSession) -> dict[str, Any]:
        try:
            before = await notice_states.move_or_raise(
                store,
                notice["_id"],
                move,
                changes={**changes, "updated_at": now},
                unset=unset,
                session=session,
                before=True,
            )
        except notice_states.NotAllowed as exc:
            raise ProblemError(409, "Conflict", str(exc)) from None
        after = await store.notices.find_one({"_id": notice["_id"]}, session=session)
        assert after is not None  # updated in this very transaction
        details: dict[str, Any] = {"from": before["state"]}
        if also is not None:
            details.update(await also(session, after, now))
        if announce:
            await store.outbox.insert_one(_outbox(after, now), session=session)
        await store.audit.insert_one(
            audit.entry(key, action, notice["_id"], details), session=session
        )
        return after

    return await store.in_transaction(work)


async def approve(store: Store, key: ApiKey, notice_id: str) -> dict[str, Any]:
    notice = await find(store, notice_id)
    if notice.get("created_by") == key.key_id and not key.allow_self_approval:
        raise ProblemError(
            403,
            "Forbidden",
            "a notice needs a second key's approval: the key that created it may not approve it",
        )
    now = _now()

    async def apply_status(
        session: AsyncClientSession, after: dict[str, Any], at: datetime
    ) -> dict[str, Any]:
        if await repository.apply_incident_status(store, after, at, session):
            return {"incident_status": after["incident_status"]}
        return {}

    return await _transition(
        store,
        key,
        notice,
        move="approve",
        changes={"approved_at": now, "approved_by": key.key_id},
        action="notice.approved",
        announce=True,
        also=apply_status,
    )


async def halt(store: Store, key: ApiKey, notice_id: str) -> dict[str, Any]:
    notice = await find(store, notice_id)
    return await _transition(
        store,
        key,
        notice,
        move="halt",
        changes={"halted_at": _now(), "halted_by": key.key_id},
        action="notice.halted",
    )


async def resume(store: Store, key: ApiKey, notice_id: str) -> dict[str, Any]:
    """Approve again from the start: the segmenter plans a new run over the whole audience
    (its partitions count from zero; people already told are skipped by their receipts)."""
    notice = await find(store, notice_id)
    return await _transition(
        store,
        key,
        notice,
        move="resume",
        changes={"resumed_at": _now(), "resumed_by": key.key_id},
        action="notice.resumed",
        announce=True,
    )


async def preview(
    store: Store, notice_id: str, *, counted: Counted | None = None
) -> dict[str, Any]:
    """Who would get what, before approval: audience per channel, each locale's message.

    Counts follow the segmenter's rules (runs of one number by
    :func:`alimi.dedupe.by_number`, the channel chain, skipped reasons, the sums
    of :class:`alimi.partitions.Progress`) by streaming the audience once, sorted
    by phone hash; ``counted`` hears the people counted so far every
    :data:`PREVIEW_REPORT_EVERY`.
    """
    notice = await find(store, notice_id)
    incident = await store.incidents.find_one({"_id": notice["incident_id"]}) or {}
    allowed = notice.get("channels") or list(DEFAULT_PREFERENCE)
    query = to_query(AudienceSpec.model_validate(notice["audience"]))
    tally = partitions.Progress()
    skipped: dict[str, int] = {}
    cursor = store.subjects.find(
        query, {"phone_hash": 1, "channels": 1, "kakao_reachable": 1}
    ).sort([("phone_hash", 1), ("_id", 1)])
    seen = 0
    async for run in dedupe.by_number(cursor):
        before, seen = seen, seen + len(run)
        if counted is not None and seen // PREVIEW_REPORT_EVERY > before // PREVIEW_REPORT_EVERY:
            await counted(seen)
        first = run[0]
        if first.get("phone_hash") is None:
            tally.skipped_no_phone += 1
            skipped["no_phone"] = skipped.get("no_phone", 0) + 1
            continue
        tally.deduplicated += len(run) - 1
        chosen = route(first, allowed)
        if isinstance(chosen, Unreachable):
            tally.skipped_unreachable += 1
            skipped[chosen.reason] = skipped.get(chosen.reason, 0) + 1
        else:
            tally.recipients_published += 1
            tally.by_channel[chosen.channel] = tally.by_channel.get(chosen.channel, 0) + 1
    if counted is not None:
        await counted(seen)
    return {
        "notice_id": notice_id,
        "state": notice["state"],
        # What approving it also does: the incident's status it sets (updates only).
        "incident_status": notice.get("incident_status"),
        # The glossary's words: people = recipients + merged + skipped.
        "audience": {
            "people": tally.people,
            "recipients": tally.recipients_published,
            "merged": tally.deduplicated,
            "messages_by_channel": tally.by_channel,
            "skipped": skipped,
        },
        "messages": _rendered(notice, incident),
    }


def _rendered(notice: dict[str, Any], incident: dict[str, Any]) -> dict[str, Any]:
    """Each locale's message as a person without a known name would read it."""
    template = templates.REGISTRY[notice.get("template") or templates.DEFAULT_TEMPLATE]
    facts = {
        "incident_title": incident.get("title", ""),
        "status_url": incident.get("status_url", ""),
        "contact": incident.get("contact", ""),
    }
    texts = notice.get("texts") or {notice.get("locale", "ko"): {"body": notice["body"]}}
    shown = {}
    for locale, words in texts.items():
        text = template.text(locale)
        full = render.fill(
            templates.compose(text, body=words["body"], facts=facts),
            {templates.NAME: text.default_name},
        )
        shown[locale] = {
            "text": full,
            "sms_type": sms_kind.sms_kind(full),
            "euc_kr_bytes": sms_kind.euc_kr_bytes(full),
            "kakao_template_code": text.kakao_code,
        }
    return shown
