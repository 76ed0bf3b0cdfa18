"""Request bodies of the intake API: the models that validate them."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
)

from alimi import api_keys, compliance, render, sms_kind, templates
from alimi import phone as phones
from alimi.audience import AttributeName, AudienceSpec, Scalar, SubjectId, Tag

MAX_SUBJECTS_PER_REQUEST = 50_000
KAKAO_MAX_CHARS = 1000


def _recipient(value: str) -> str:
    try:
        return phones.normalise_recipient(value)
    except phones.InvalidPhone as exc:
        raise ValueError(str(exc)) from None


def _blank_is_none(value: Any) -> Any:
    """An empty (or blank) phone is no phone, as an empty cell of a CSV import is."""
    return None if isinstance(value, str) and not value.strip() else value


Phone = Annotated[str, StringConstraints(max_length=32), AfterValidator(_recipient)]
Locale = Annotated[str, StringConstraints(pattern=r"^[a-z]{2}(-[A-Z]{2})?$")]
PersonChannel = Literal["kakao", "sms"]
DEFAULT_CHANNELS: tuple[PersonChannel, ...] = ("kakao", "sms")
SlackChannel = Annotated[str, StringConstraints(pattern=r"^#?[A-Za-z0-9._-]{1,80}$")]
# What the validators check, said in the JSON Schema too (the OpenAPI document).
UNIQUE: dict[str, Any] = {"uniqueItems": True}
TEMPLATES: dict[str, Any] = {"enum": sorted(templates.REGISTRY)}


def _trimmed(value: str) -> str:
    return value.strip()


def _not_blank(value: str) -> str:
    if not value:
        raise ValueError("must not be blank")
    return value


# Length limits hold for text as it is sent, as the document's minLength and
# maxLength say (strip_whitespace would measure it trimmed and so accept, say, 201
# characters with a trailing space); the spaces around it are dropped after, and
# text that is only spaces counts as empty.
Trimmed = AfterValidator(_trimmed)
NotBlank = AfterValidator(_not_blank)
Text = Annotated[str, StringConstraints(min_length=1, max_length=200), Trimmed, NotBlank]
# RFC 3339 (``format: date-time``), the offset optional here so that a time without
# one gets its own message (``IncidentIn._aware``) rather than a generic one.
RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})?")


def _rfc3339(value: Any) -> Any:
    """Only an RFC 3339 string: not a number of seconds, a bare date or another layout."""
    if not isinstance(value, str) or not RFC3339.fullmatch(value):
        raise ValueError("expected an RFC 3339 date-time, e.g. 2026-11-28T09:00:00+09:00")
    return value


# Parsed from its string by pydantic (not strict: strict would want a datetime object).
DateTime = Annotated[datetime, Field(strict=False), BeforeValidator(_rfc3339)]


class _Strict(BaseModel):
    """A request body exactly as the OpenAPI document describes it.

    ``strict``: a value of the wrong JSON type is refused, never converted
    (``0`` is not ``false``, ``"5"`` is not ``5``), as the document's types say.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class SubjectIn(_Strict):
    external_id: SubjectId
    name: Annotated[str, StringConstraints(max_length=200), Trimmed] = ""
    phone: Annotated[Phone | None, BeforeValidator(_blank_is_none)] = Field(
        None,
        description="E.164 (+821012345678) or a Korean national number (010-1234-5678)."
        " A number that receives text and KakaoTalk messages: a mobile number (or one the"
        " country's numbering cannot tell from a landline, as in the US); a landline,"
        " toll-free (080), representative (1588), VoIP (070) or forwarding (050) number is"
        ' refused, naming its kind. Empty (""), blank or null: no phone, as an empty cell of'
        " a CSV import (the person is skipped with the reason no_phone; a phone stored"
        " before is removed)",
    )
    locale: Locale = "ko"
    tags: list[Tag] = Field(default_factory=list, max_length=100)
    attributes: dict[AttributeName, Scalar] = Field(default_factory=dict, max_length=50)
    # The channels this person reads, most preferred first; unset: Kakao, then SMS.
    channels: list[PersonChannel] | None = Field(
        None, min_length=1, max_length=2, json_schema_extra=UNIQUE
    )
    # False: known not to receive AlimTalk (not a KakaoTalk user, blocked); unset: unknown.
    kakao_reachable: bool | None = None

    @field_validator("channels")
    @classmethod
    def _no_repeats(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and len(set(value)) != len(value):
            raise ValueError("lists a channel twice")
        return value


Paragraph = Annotated[str, StringConstraints(min_length=1, max_length=500), Trimmed, NotBlank]


class DisclosureIn(_Strict):
    """What the law requires a breach notice to tell (see ``alimi.compliance``)."""

    leaked_items: list[
        Annotated[str, StringConstraints(min_length=1, max_length=100), Trimmed, NotBlank]
    ] = Field(default_factory=list, max_length=30)
    when_and_how: Paragraph | None = None
    likely_consequences: Paragraph | None = None
    what_you_can_do: Paragraph | None = None
    countermeasures: Paragraph | None = None

    @field_validator("when_and_how", "likely_consequences", "what_you_can_do", "countermeasures")
    @classmethod
    def _carrier_encodable(cls, value: str | None) -> str | None:
        if value is not None:
            _check_encodable(value)
        return value


def _check_encodable(value: str) -> None:
    bad = sms_kind.unencodable(value)
    if bad:
        shown = ", ".join(f"'{ch}' (U+{ord(ch):04X})" for ch in bad[:20])
        raise ValueError(f"contains characters Korean SMS/LMS (EUC-KR) cannot carry: {shown}")


class _Words(_Strict):
    """A notice's own words in one language; ``#{name}`` etc. are filled per person."""

    body: Annotated[str, StringConstraints(min_length=1, max_length=2000), Trimmed, NotBlank]
    title: Annotated[str, StringConstraints(max_length=40), Trimmed] = ""
    disclosure: DisclosureIn | None = None

    def full_body(self, locale: str) -> str:
        """The body followed by the disclosure's items, as every person reads them."""
        items = compliance.render(self.disclosure.model_dump() if self.disclosure else None, locale)
        return f"{self.body}\n\n{items}" if items else self.body

    @field_validator("body", "title")
    @classmethod
    def _known_variables_only(cls, value: str) -> str:
        unknown = render.unknown_variables(value)
        if unknown:
            known = ", ".join(sorted(render.KNOWN_VARIABLES))
            raise ValueError(f"unknown template variable(s) {', '.join(unknown)}; known: {known}")
        return value

    @field_validator("body", "title")
    @classmethod
    def _carrier_encodable(cls, value: str) -> str:
        _check_encodable(value)
        if not sms_kind.fits_lms(value):
            raise ValueError(
                f"is {sms_kind.euc_kr_bytes(value)} bytes in EUC-KR; "
                f"an LMS carries at most {sms_kind.LMS_MAX_BYTES}"
            )
        return value

    @field_validator("title")
    @classmethod
    def _same_title_for_everyone(cls, value: str) -> str:
        personal = [v for v in render.variables(value) if v in render.RECIPIENT_VARIABLES]
        if personal:
            raise ValueError(
                f"the title is shared by every recipient; it cannot use {', '.join(personal)}"
            )
        return value


class TranslationIn(_Words):
    pass


class NoticeIn(_Words):
    """The message of one notice round, in ``locale``, with optional translations."""

    template: str = Field(templates.DEFAULT_TEMPLATE, json_schema_extra=TEMPLATES)
    locale: Locale = "ko"
    translations: dict[Locale, TranslationIn] = Field(default_factory=dict, max_length=10)
    # The channels this notice may use; each person gets the first of their own that is here.
    channels: list[PersonChannel] = Field(
        default_factory=lambda: list(DEFAULT_CHANNELS),
        min_length=1,
        max_length=2,
        json_schema_extra=UNIQUE,
    )

    @field_validator("template")
    @classmethod
    def _registered(cls, value: str) -> str:
        if value not in templates.REGISTRY:
            raise ValueError(
                f"unknown template {value!r}; known: {', '.join(sorted(templates.REGISTRY))}"
            )
        return value

    @field_validator("channels")
    @classmethod
    def _no_repeated_channels(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("lists a channel twice")
        return value

    def words(self) -> dict[str, _Words]:
        """locale -> the notice's words in it (its own locale first)."""
        return {
            self.locale: self,
            **{k: v for k, v in self.translations.items() if k != self.locale},
        }


class IncidentIn(_Strict):
    title: Text
    kind: Literal["data_breach", "service_outage", "security_incident", "other"] = "data_breach"
    severity: Literal["low", "medium", "high", "critical"]
    discovered_at: DateTime = Field(
        description="when the incident was discovered, with its time zone; the 72-hour legal"
        " deadline runs from it. Not in the future: at most"
        f" {compliance.CLOCK_SKEW.total_seconds() / 60:.0f} minutes ahead of the server's clock"
        " (clock skew). Long past is taken: the answers then say it is overdue, and by how much"
    )
    jurisdictions: list[Literal["KR-PIPA", "EU-GDPR"]] = Field(default_factory=list, max_length=5)
    contact: Annotated[str, StringConstraints(max_length=200), Trimmed] = ""
    slack_channel: (
        Annotated[str, StringConstraints(pattern=r"^[#@]?[A-Za-z0-9._-]{1,80}$")] | None
    ) = None
    notice: NoticeIn
    audience: AudienceSpec

    @field_validator("title", "contact")
    @classmethod
    def _carrier_encodable(cls, value: str) -> str:
        """The title and the contact desk fill #{incident_title} and #{contact} in messages."""
        _check_encodable(value)
        return value

    @field_validator("discovered_at")
    @classmethod
    def _aware_and_past(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("needs a time zone, e.g. 2026-11-28T09:00:00+09:00")
        now = datetime.now(UTC)
        if value > now + compliance.CLOCK_SKEW:
            raise ValueError(
                f"is {compliance.duration((value - now).total_seconds())} in the future;"
                " an incident cannot be discovered later than now (this server's clock reads"
                f" {now:%Y-%m-%dT%H:%M:%SZ}; {compliance.CLOCK_SKEW.total_seconds() / 60:.0f}"
                " minutes of clock skew are allowed)"
            )
        return value


def template_problems(incident: IncidentIn) -> list[dict[str, str]]:
    """What keeps the notice's template from being filled for everyone, per field."""
    return notice_template_problems(incident.notice, title=incident.title, contact=incident.contact)


def notice_template_problems(notice: NoticeIn, *, title: str, contact: str) -> list[dict[str, str]]:
    """What keeps ``notice``'s template from being filled for everyone, per field.

    Every locale of the notice needs a text of the template, and every fact the
    template uses must be known: a message is never sent with a hole in it.
    Also checks that the whole message fits an LMS and an AlimTalk message.
    """
    template = templates.REGISTRY[notice.template]
    facts = {"incident_title": title, "contact": contact, "status_url": "x" * 60}
    errors: list[dict[str, str]] = []
    for locale, words in notice.words().items():
        where = "notice.locale" if locale == notice.locale else f"notice.translations.{locale}"
        if locale not in template.locales:
            errors.append(
                {
                    "field": where,
                    "message": f"template {template.code!r} has no {locale!r} text; it has "
                    + ", ".join(sorted(template.locales)),
                }
            )
            continue
        text = template.text(locale)
        for missing in templates.unfilled(text, facts):
            errors.append(
                {
                    "field": missing if missing != "incident_title" else "title",
                    "message": f"template {template.code!r} ({locale}) needs #{{{missing}}}, "
                    "but the incident has none",
                }
            )
        whole = render.fill(
            templates.compose(text, body=words.body, facts=facts), {"name": "가" * 10}
        )
        if not sms_kind.fits_lms(whole):
            errors.append(
                {
                    "field": f"{where.replace('.locale', '')}.body",
                    "message": f"the whole message in {locale} is about "
                    f"{sms_kind.euc_kr_bytes(whole)} bytes in EUC-KR; "
                    f"an LMS carries at most {sms_kind.LMS_MAX_BYTES}",
                }
            )
        elif len(whole) > KAKAO_MAX_CHARS:
            errors.append(
                {
                    "field": f"{where.replace('.locale', '')}.body",
                    "message": f"the whole message in {locale} is about {len(whole)} characters; "
                    f"an AlimTalk message carries at most {KAKAO_MAX_CHARS}",
                }
            )
    return errors


class KeyIn(_Strict):
    """A new API key: who uses it, what it may do."""

    name: Annotated[str, StringConstraints(min_length=1, max_length=100), Trimmed, NotBlank]
    scopes: list[Literal[tuple(api_keys.SCOPES)]] = Field(min_length=1, max_length=10)  # type: ignore[valid-type]
    allow_self_approval: bool = False


def compliance_problems(incident: IncidentIn) -> list[dict[str, str]]:
    """Each legally required item the first notice does not carry, in every language."""
    errors = []
    for locale, words in incident.notice.words().items():
        where = "notice" if locale == incident.notice.locale else f"notice.translations.{locale}"
        disclosure = words.disclosure.model_dump() if words.disclosure else None
        for jurisdiction, item in compliance.missing(
            incident.jurisdictions, disclosure, incident.contact
        ):
            field = "contact" if item.field == "contact" else f"{where}.disclosure.{item.field}"
            errors.append({"field": field, "message": f"{jurisdiction} requires {item.legal_name}"})
    unique = {(e["field"], e["message"]): e for e in errors}
    return list(unique.values())


IncidentStatus = Literal["investigating", "identified", "monitoring", "resolved"]


class UpdateNoticeIn(NoticeIn):
    """A later notice: how the investigation is going (``progress_update`` by default)."""

    template: str = Field("progress_update", json_schema_extra=TEMPLATES)


class UpdateIn(_Strict):
    """A progress notice for an incident, and optionally its new status."""

    status: IncidentStatus | None = Field(
        None,
        description="the incident's new status, applied when a second key approves the notice",
    )
    notice: UpdateNoticeIn
    # Unset: the same people as the incident's first notice.
    audience: AudienceSpec | None = None
