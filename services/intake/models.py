"""Request bodies of the intake API: the models that validate them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
)

from alimi import phone as phones
from alimi import render
from alimi.audience import AttributeName, AudienceSpec, Scalar, SubjectId, Tag

MAX_SUBJECTS_PER_REQUEST = 50_000
LMS_MAX_BYTES = 2000


def _e164(value: str) -> str:
    try:
        return phones.normalise(value)
    except phones.InvalidPhone as exc:
        raise ValueError(str(exc)) from None


Phone = Annotated[str, StringConstraints(max_length=32), AfterValidator(_e164)]
Locale = Annotated[str, StringConstraints(pattern=r"^[a-z]{2}(-[A-Z]{2})?$")]
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SubjectIn(_Strict):
    external_id: SubjectId
    name: Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)] = ""
    phone: Phone | None = None
    locale: Locale = "ko"
    tags: list[Tag] = Field(default_factory=list, max_length=100)
    attributes: dict[AttributeName, Scalar] = Field(default_factory=dict, max_length=50)


class NoticeIn(_Strict):
    """The message of one notice round; ``#{name}`` etc. are filled per person."""

    body: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]
    title: Annotated[str, StringConstraints(strip_whitespace=True, max_length=40)] = ""

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
        bad = render.euc_kr_unencodable(value)
        if bad:
            shown = ", ".join(f"'{ch}' (U+{ord(ch):04X})" for ch in bad[:20])
            raise ValueError(f"contains characters Korean SMS/LMS (EUC-KR) cannot carry: {shown}")
        size = render.euc_kr_length(value)
        if size > LMS_MAX_BYTES:
            raise ValueError(f"is {size} bytes in EUC-KR; an LMS carries at most {LMS_MAX_BYTES}")
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


class IncidentIn(_Strict):
    title: Text
    kind: Literal["data_breach", "service_outage", "security_incident", "other"] = "data_breach"
    severity: Literal["low", "medium", "high", "critical"]
    discovered_at: datetime
    jurisdictions: list[Literal["KR-PIPA", "EU-GDPR"]] = Field(default_factory=list, max_length=5)
    contact: Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)] = ""
    notice: NoticeIn
    audience: AudienceSpec

    @field_validator("discovered_at")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("needs a time zone, e.g. 2026-11-28T09:00:00+09:00")
        return value
