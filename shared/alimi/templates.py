"""The template registry: every message Alimi sends people is one of these.

A template has one text per locale. Each text is also an AlimTalk template
that the Kakao provider has approved under its own code, so the same text is
sent on every channel: over Kakao as that code plus variable values, over
SMS/LMS rendered in full. A notice names its template; the operator's own
words go into ``#{body}``.

Variables:

- ``name``: the person's name (the locale's ``default_name`` when unknown);
- ``body``: the notice's text for the person's locale (it may itself use
  ``#{name}``, ``#{incident_title}``, ``#{status_url}`` and ``#{contact}``);
- ``incident_title``, ``status_url``, ``contact``: the incident's facts.

Intake refuses a notice whose template needs a fact the incident does not have
(:func:`unfilled`), so nothing goes out with a hole in it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from alimi import render

BODY = "body"
NAME = "name"
FACTS = ("incident_title", "status_url", "contact")


@dataclass(frozen=True)
class LocaleText:
    kakao_code: str  # the approved AlimTalk template code of this text
    text: str  # with #{variable} placeholders
    button: str  # label of the status-page link button
    default_name: str  # stands in for #{name} when a person's name is unknown

    @property
    def variables(self) -> list[str]:
        return render.variables(self.text)


@dataclass(frozen=True)
class Template:
    code: str
    description: str
    locales: Mapping[str, LocaleText]

    def text(self, locale: str) -> LocaleText:
        return self.locales[locale]


REGISTRY: Mapping[str, Template] = MappingProxyType(
    {
        "breach_notice": Template(
            "breach_notice",
            "The first notice of a personal-data incident",
            MappingProxyType(
                {
                    "ko": LocaleText(
                        "ALIMI_BREACH_KO",
                        "[#{incident_title}]\n"
                        "#{name}님, 개인정보 유출 사고를 알려드립니다.\n\n"
                        "#{body}\n\n"
                        "문의: #{contact}\n"
                        "자세히 보기: #{status_url}",
                        "자세히 보기",
                        "고객",
                    ),
                    "en": LocaleText(
                        "ALIMI_BREACH_EN",
                        "[#{incident_title}]\n"
                        "Dear #{name}, we are writing about a personal data incident.\n\n"
                        "#{body}\n\n"
                        "Contact: #{contact}\n"
                        "Details: #{status_url}",
                        "Details",
                        "customer",
                    ),
                }
            ),
        ),
        "progress_update": Template(
            "progress_update",
            "A later notice: how the investigation is going",
            MappingProxyType(
                {
                    "ko": LocaleText(
                        "ALIMI_UPDATE_KO",
                        "[#{incident_title}] 조사 진행 안내\n#{name}님,\n#{body}\n"
                        "자세히 보기: #{status_url}",
                        "자세히 보기",
                        "고객",
                    ),
                    "en": LocaleText(
                        "ALIMI_UPDATE_EN",
                        "[#{incident_title}] Investigation update\nDear #{name},\n#{body}\n"
                        "Details: #{status_url}",
                        "Details",
                        "customer",
                    ),
                }
            ),
        ),
        "short_notice": Template(
            "short_notice",
            "The operator's text alone: a notice short enough for one SMS",
            MappingProxyType(
                {
                    "ko": LocaleText("ALIMI_SHORT_KO", "#{body}", "자세히 보기", "고객"),
                    "en": LocaleText("ALIMI_SHORT_EN", "#{body}", "Details", "customer"),
                }
            ),
        ),
    }
)

DEFAULT_TEMPLATE = "breach_notice"


def unfilled(text: LocaleText, facts: Mapping[str, str]) -> list[str]:
    """The variables of ``text`` that ``facts`` (plus ``name`` and ``body``) leave empty."""
    return [v for v in text.variables if v not in (NAME, BODY) and not (facts.get(v) or "").strip()]


def compose(text: LocaleText, *, body: str, facts: Mapping[str, str]) -> str:
    """The full message with everything but ``#{name}`` filled in."""
    filled_body = render.fill(body, facts)
    return render.fill(render.fill(text.text, {BODY: filled_body}), facts)


def kakao_parameters(
    text: LocaleText, *, body: str, facts: Mapping[str, str], name: str
) -> dict[str, str]:
    """The ``templateParameter`` values of one person's AlimTalk message."""
    person = name or text.default_name
    values = {**facts, NAME: person}
    values[BODY] = render.fill(render.fill(body, facts), {NAME: person})
    return {v: values.get(v, "") for v in text.variables}


def kakao_templates() -> dict[str, dict[str, Any]]:
    """What the Kakao provider must have approved: code -> content and button count."""
    return {
        t.kakao_code: {"content": t.text, "buttons": 1}
        for template in REGISTRY.values()
        for t in template.locales.values()
    }
