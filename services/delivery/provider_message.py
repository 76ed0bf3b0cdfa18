"""Pure logic: a notice and a recipient in, the provider message out.

A :class:`NoticeMessage` is a notice with its template and its incident's facts
filled in, one text per locale; only the person's name remains. The same text
goes out on every channel: as an AlimTalk template code plus variable values,
or rendered in full as SMS or LMS (with a subject line), the kind chosen by
:mod:`alimi.sms_kind` for each person's text.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from alimi import render, sms_kind, templates


@dataclass(frozen=True)
class LocalisedNotice:
    """The notice in one locale: the template text, the notice's words, the facts."""

    text: templates.LocaleText
    body: str  # the notice's own words, facts not yet filled
    title: str  # LMS subject line, facts filled and cut to 40 bytes
    facts: Mapping[str, str]
    full: str  # the whole message with facts filled; only #{name} remains

    def text_for(self, name: str) -> str:
        return render.fill(self.full, {templates.NAME: name or self.text.default_name})

    def provider_body(self) -> str:
        """The message with ``#{name}`` in the SMS gateway's ``##name##`` form."""
        return render.VARIABLE.sub(lambda m: f"##{m.group(1)}##", self.full)

    def sms_parameters(self, name: str) -> dict[str, str]:
        return {templates.NAME: name or self.text.default_name}

    def kakao_parameters(self, name: str) -> dict[str, str]:
        return templates.kakao_parameters(self.text, body=self.body, facts=self.facts, name=name)

    def kakao_buttons(self) -> list[dict[str, Any]]:
        url = self.facts.get("status_url", "")
        return [
            {"ordering": 1, "type": "WL", "name": self.text.button, "linkMo": url, "linkPc": url}
        ]


@dataclass(frozen=True)
class NoticeMessage:
    template_code: str
    default_locale: str
    locales: Mapping[str, LocalisedNotice]
    approved_at: datetime | None = None

    @classmethod
    def build(cls, notice: Mapping[str, Any], incident: Mapping[str, Any]) -> NoticeMessage:
        """From the stored notice and incident documents (see the intake service)."""
        template = templates.REGISTRY[notice.get("template") or templates.DEFAULT_TEMPLATE]
        default_locale = notice.get("locale") or "ko"
        texts = notice.get("texts") or {
            default_locale: {"body": notice["body"], "title": notice.get("title", "")}
        }
        facts = {fact: str(incident.get(_INCIDENT_FIELD[fact]) or "") for fact in templates.FACTS}
        locales = {}
        for locale, words in texts.items():
            text = template.text(locale)
            title = render.fill(words.get("title") or incident.get("title", ""), facts)
            locales[locale] = LocalisedNotice(
                text=text,
                body=words["body"],
                title=sms_kind.cut(title, sms_kind.LMS_TITLE_MAX_BYTES),
                facts=facts,
                full=templates.compose(text, body=words["body"], facts=facts),
            )
        return cls(template.code, default_locale, locales, notice.get("approved_at"))

    def for_locale(self, locale: str) -> LocalisedNotice:
        """The person's locale, else its language (``en`` for ``en-GB``), else the default."""
        found = self.locales.get(locale) or self.locales.get(locale.split("-")[0])
        return found or self.locales[self.default_locale]


_INCIDENT_FIELD = {"incident_title": "title", "status_url": "status_url", "contact": "contact"}
