"""Pure logic: a notice's template and a recipient in, the provider message out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from alimi import render

SMS_MAX_BYTES = 90
LMS_MAX_BYTES = 2000
LMS_TITLE_MAX_BYTES = 40


@dataclass(frozen=True)
class NoticeTemplate:
    """A notice with its incident's facts filled in; only per-person variables remain."""

    body: str
    title: str

    @classmethod
    def build(cls, *, body: str, title: str, incident: dict[str, str]) -> NoticeTemplate:
        facts = {
            "incident_title": incident.get("title", ""),
            "status_url": incident.get("status_url", ""),
            "contact": incident.get("contact", ""),
        }
        filled_title = render.fill(title or incident.get("title", ""), facts)
        return cls(
            body=render.fill(body, facts), title=_truncate_euc_kr(filled_title, LMS_TITLE_MAX_BYTES)
        )

    def text_for(self, name: str) -> str:
        return render.fill(self.body, {"name": name})

    def provider_body(self) -> str:
        """The body with per-person variables in the gateway's ``##var##`` form."""
        return render.VARIABLE.sub(lambda m: f"##{m.group(1)}##", self.body)


def message_kind(text: str) -> Literal["SMS", "LMS"]:
    """SMS up to 90 EUC-KR bytes, LMS beyond (the caller keeps bodies under 2,000)."""
    return "SMS" if _euc_kr_bytes(text) <= SMS_MAX_BYTES else "LMS"


def _euc_kr_bytes(text: str) -> int:
    return len(text.encode("euc_kr", errors="replace"))


def _truncate_euc_kr(text: str, limit: int) -> str:
    while _euc_kr_bytes(text) > limit:
        text = text[:-1]
    return text
