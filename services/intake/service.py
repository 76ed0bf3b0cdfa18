"""The intake service layer: what the HTTP views call."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from alimi import compliance, counters, ids, partitions, states
from alimi import phone as phones
from alimi.api_keys import ApiKey
from alimi.counters import NoticeCounts
from alimi.crypto import Keyring
from alimi.store import Store
from alimi_intake import audit, repository
from alimi_intake.models import IncidentIn, NoticeIn, SubjectIn, UpdateIn


def _now() -> datetime:
    return datetime.now(UTC)


def subject_document(subject: SubjectIn, hash_key: bytes, keyring: Keyring) -> dict[str, Any]:
    """The stored subject: the phone number only encrypted, hashed and masked, never clear."""
    number = subject.phone
    doc: dict[str, Any] = {
        "_id": subject.external_id,
        "name": subject.name,
        "locale": subject.locale,
        "tags": list(subject.tags),
        "attributes": dict(subject.attributes),
        "phone_enc": phones.seal(keyring, subject.external_id, number) if number else None,
        "phone_hash": phones.lookup_hash(number, hash_key) if number else None,
        "phone_masked": phones.mask(number) if number else None,
        "channels": list(subject.channels) if subject.channels else None,
        "kakao_reachable": subject.kakao_reachable,
    }
    return doc


async def import_subjects(
    store: Store, *, subjects: Sequence[SubjectIn], hash_key: bytes, keyring: Keyring
) -> dict[str, int]:
    docs = [subject_document(s, hash_key, keyring) for s in subjects]
    result = await repository.upsert_subjects(store, docs, _now())
    return {"received": len(docs), **result}


async def create_incident(
    store: Store, *, request: IncidentIn, public_base_url: str, key: ApiKey
) -> dict[str, Any]:
    """Store the incident and its first notice, which waits for a second key's approval.

    The answer says where the 72-hour legal deadline stands: an incident
    discovered days ago is taken, and told plainly that it is overdue.
    """
    now = _now()
    incident_id = ids.new_id("inc")
    notice_id = ids.new_id("ntc")
    public_id = ids.public_id()
    incident = {
        "_id": incident_id,
        "public_id": public_id,
        "title": request.title,
        "kind": request.kind,
        "severity": request.severity,
        "discovered_at": request.discovered_at,
        "deadline": compliance.deadline(request.discovered_at),
        "jurisdictions": list(request.jurisdictions),
        "contact": request.contact,
        "slack_channel": request.slack_channel,
        "status": "investigating",
        "status_url": f"{public_base_url.rstrip('/')}/s/{public_id}",
        "created_at": now,
    }
    notice = {
        **_notice_document(
            notice_id,
            incident_id,
            request.notice,
            audience=request.audience.model_dump(mode="json"),
            key=key,
            now=now,
        ),
        "seq": 1,
    }
    entry = audit.entry(key, "incident.created", incident_id, {"notice_id": notice_id})
    await repository.insert_incident_with_notice(store, incident, notice, entry)
    return {
        "incident_id": incident_id,
        "notice_id": notice_id,
        "public_id": public_id,
        "status_url": incident["status_url"],
        **compliance.legal_deadline(request.discovered_at, now).fields(),
    }


async def create_update(
    store: Store, *, incident: dict[str, Any], request: UpdateIn, key: ApiKey
) -> dict[str, Any]:
    """A later notice of ``incident``, waiting for approval, with the status it asks for.

    The incident keeps its status until a second key approves the notice
    (four-eyes: nothing one person alone posts changes what the public sees).
    """
    now = _now()
    first = await repository.find_first_notice(store, incident["_id"])
    audience = (
        request.audience.model_dump(mode="json")
        if request.audience is not None
        else (first or {}).get("audience")
    )
    notice_id = ids.new_id("ntc")
    notice = {
        **_notice_document(
            notice_id, incident["_id"], request.notice, audience=audience, key=key, now=now
        ),
        "incident_status": request.status,  # applied on approval (notices.approve)
    }
    seq = await repository.insert_update(
        store,
        notice,
        audit.entry(
            key,
            "notice.created",
            incident["_id"],
            {"notice_id": notice_id, "status": request.status},
        ),
    )
    return {"incident_id": incident["_id"], "notice_id": notice_id, "seq": seq}


def _notice_document(
    notice_id: str,
    incident_id: str,
    notice: NoticeIn,
    *,
    audience: Any,
    key: ApiKey,
    now: datetime,
) -> dict[str, Any]:
    """A notice as stored, waiting for a second key's approval (without its ``seq``,
    which the first notice has as 1 and an update gets when it is inserted)."""
    return {
        "_id": notice_id,
        "incident_id": incident_id,
        "state": states.NOTICE_PENDING_APPROVAL,
        "created_by": key.key_id,
        "template": notice.template,
        "locale": notice.locale,
        "body": notice.body,
        "title": notice.title,
        "texts": _texts(notice),
        "audience": audience,
        "channels": list(notice.channels),
        "created_at": now,
    }


def _texts(notice: NoticeIn) -> dict[str, Any]:
    return {
        locale: {
            "body": words.full_body(locale),
            "title": words.title,
            "disclosure": words.disclosure.model_dump() if words.disclosure else None,
        }
        for locale, words in notice.words().items()
    }


def _notice_view(
    notice: dict[str, Any], counts: NoticeCounts, progress: partitions.Progress
) -> dict[str, Any]:
    """A notice as the read-back shows it; people, recipients, merged and skipped as the
    glossary of docs/architecture.md defines them (people = recipients + merged + skipped)."""
    return {
        "notice_id": notice["_id"],
        "seq": notice["seq"],
        "state": notice["state"],
        "template": notice.get("template"),
        "locale": notice.get("locale"),
        "title": notice.get("title", ""),
        "body": notice["body"],
        "channels": notice.get("channels", []),
        # The status the incident takes when this notice is approved (updates only).
        "incident_status": notice.get("incident_status"),
        "created_at": notice["created_at"].isoformat(),
        "people": progress.people,
        "recipients": progress.recipients_published,
        "merged": progress.deduplicated,
        "skipped": progress.skipped,
        "skipped_no_phone": progress.skipped_no_phone,
        "skipped_unreachable": progress.skipped_unreachable,
        "recipients_by_channel": progress.by_channel,
        "partitions": {"total": progress.partitions, "done": progress.partitions_done},
        "counts": counts.totals(),
        "counts_by_channel": counts.by_channel,
        "fell_back": counts.fell_back,
    }


def _legal_view(
    incident: dict[str, Any],
    notices: list[dict[str, Any]],
    counts: dict[str, NoticeCounts],
    resolved: dict[str, partitions.Progress],
) -> dict[str, Any]:
    """The legal deadline, time left (or how long overdue), reports due, the people the
    first notice is for, and how many of its recipients a provider has accepted a message
    for (``notified``; people sharing a number are reached by one message)."""
    when = compliance.incident_deadline(incident, _now())
    first = notices[0] if notices else None
    people = recipients = notified = 0
    if first is not None:
        progress = resolved[first["_id"]]
        people, recipients = progress.people, progress.recipients_published
        notified = counts.get(first["_id"], NoticeCounts()).reached()
    report_due = compliance.regulator_report_due(incident.get("jurisdictions", []), people)
    return {
        **when.fields(),
        "people": people,
        "recipients": recipients,
        "notified": notified,
        "notified_share": round(notified / recipients, 4) if recipients else 0.0,
        "regulator_report_due": report_due,
        "regulator_report_note": compliance.regulator_report_note(report_due, when),
    }


async def get_incident(store: Store, *, incident_id: str) -> dict[str, Any] | None:
    incident = await repository.find_incident(store, incident_id)
    if incident is None:
        return None
    notices = await repository.find_notices(store, incident_id)
    counts = await counters.totals(store, [n["_id"] for n in notices])
    resolved = await partitions.progress_of(store, notices)
    return {
        **_legal_view(incident, notices, counts, resolved),
        "incident_id": incident["_id"],
        "public_id": incident["public_id"],
        "title": incident["title"],
        "kind": incident["kind"],
        "severity": incident["severity"],
        "status": incident["status"],
        "discovered_at": incident["discovered_at"].isoformat(),
        "jurisdictions": incident["jurisdictions"],
        "status_url": incident["status_url"],
        "notices": [
            _notice_view(n, counts.get(n["_id"], NoticeCounts()), resolved[n["_id"]])
            for n in notices
        ],
    }
