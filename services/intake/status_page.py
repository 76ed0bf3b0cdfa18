"""The public status page of an incident: ``GET /s/{public_id}``.

The link every message carries. One page per incident and language, the same
for everyone who follows the link, so it never holds personal data: ``#{name}``
in a notice becomes the template's neutral word ("고객", "customer") and only
the incident's public facts fill the other variables.

The rendering functions take plain data (the incident and notice documents)
and return an HTML string, rendered from the Jinja2 templates in
``templates/`` with autoescape on: every value is escaped unless it is
markup built here (the stylesheet, ``<time>`` elements). The page is plain
HTML with one inline style block (``templates/status_page.css``), allowed by
the Content-Security-Policy through its hash; no script.

Times are shown in Korea Standard Time (the time of the organisation and of
most people told); the English page adds UTC. Korea has kept UTC+9 without
daylight saving since 1988, so a fixed offset needs no time-zone database.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from importlib import resources
from typing import Any

import jinja2
from aiohttp import web
from markupsafe import Markup

from alimi import render, states, templates
from alimi.store import Store
from alimi_intake import access
from alimi_intake.context import CONTEXT

routes = web.RouteTableDef()

LANGUAGES = ("ko", "en")
DEFAULT_LANGUAGE = "ko"
KST = timezone(timedelta(hours=9), "KST")

# A notice is public once its text was approved to go out; notices waiting
# for approval and any state added later stay off the page.
PUBLIC_STATES = frozenset(
    {
        states.NOTICE_APPROVED,
        states.NOTICE_SEGMENTING,
        states.NOTICE_SENDING,
        states.NOTICE_COMPLETED,
        states.NOTICE_HALTED,
        states.NOTICE_FAILED,
    }
)

# ids.public_id() is 22 URL-safe characters; anything else is not looked up.
PUBLIC_ID = re.compile(r"[A-Za-z0-9_-]{16,64}")

CACHE_CONTROL = "public, max-age=60"

TEMPLATES = jinja2.Environment(
    loader=jinja2.PackageLoader("alimi_intake", "templates"),
    autoescape=True,  # every template: the page is HTML whatever a template is named
    trim_blocks=True,
    lstrip_blocks=True,
    undefined=jinja2.StrictUndefined,
)
CSS = Markup(resources.files("alimi_intake").joinpath("templates/status_page.css").read_text())
STYLE_HASH = base64.b64encode(hashlib.sha256(CSS.encode()).digest()).decode()
CONTENT_SECURITY_POLICY = (
    f"default-src 'none'; style-src 'sha256-{STYLE_HASH}'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}

STATUS_WORDS: Mapping[str, Mapping[str, tuple[str, str]]] = {
    "ko": {
        "investigating": ("조사 중", "무슨 일이 있었는지 조사하고 있습니다."),
        "identified": ("원인 확인", "원인을 확인했고, 조치하고 있습니다."),
        "monitoring": ("조치 후 확인 중", "조치를 마쳤고, 문제가 다시 없는지 지켜보고 있습니다."),
        "resolved": ("종결", "이 사고는 종결되었습니다."),
    },
    "en": {
        "investigating": ("Investigating", "We are finding out what happened."),
        "identified": ("Cause identified", "We know the cause and are fixing it."),
        "monitoring": ("Monitoring", "The fix is in place; we are making sure it holds."),
        "resolved": ("Resolved", "This incident is closed."),
    },
}

WORDS: Mapping[str, Mapping[str, str]] = {
    "ko": {
        "kicker": "사고 진행 상황 안내",
        "page": "진행 상황",
        "status": "현재 상태",
        "updates_here": "새 소식이 있으면 이 페이지에 올립니다.",
        "discovered": "발견 일시",
        "last_notice": "최근 안내",
        "todo": "지금 하실 일",
        "todo_from": "{when}에 보낸 안내에서",
        "no_notice": "아직 게시된 안내가 없습니다. 안내가 나가면 이곳에도 올립니다.",
        "contact": "문의",
        "timeline": "지금까지의 안내",
        "first_notice": "첫 안내",
        "notice_n": "{seq}번째 안내",
        "only_in": "이 안내는 {language}로만 제공됩니다.",
        "language_nav": "언어 선택",
        "footer": (
            "이 페이지는 링크를 받은 모든 분께 같은 내용으로 보이며, 개인정보를 담고 있지 않습니다."
        ),
    },
    "en": {
        "kicker": "Incident status",
        "page": "Status",
        "status": "Current status",
        "updates_here": "We post every update on this page.",
        "discovered": "Discovered",
        "last_notice": "Latest notice",
        "todo": "What you should do",
        "todo_from": "From the notice sent {when}",
        "no_notice": "No notice has been published yet. When one goes out, it will be here too.",
        "contact": "Contact",
        "timeline": "All notices",
        "first_notice": "First notice",
        "notice_n": "Notice {seq}",
        "only_in": "This notice is only available in {language}.",
        "language_nav": "Language",
        "footer": "Everyone who has this link sees the same page; it holds no personal data.",
    },
}

# Name of a language, in each page language; and of each language in itself.
LANGUAGE_NAMES = {"ko": {"ko": "한국어", "en": "영어"}, "en": {"ko": "Korean", "en": "English"}}
ENDONYMS = {"ko": "한국어", "en": "English"}
NEUTRAL_NAME = {"ko": "고객", "en": "customer"}
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _primary(tag: str) -> str:
    return tag.strip().lower().split("-")[0]


def negotiate(query_lang: str | None, accept_language: str | None) -> str:
    """The page language: ``?lang=``, else the best ``Accept-Language`` match, else Korean."""
    if query_lang and _primary(query_lang) in LANGUAGES:
        return _primary(query_lang)
    best, best_q = DEFAULT_LANGUAGE, 0.0
    for item in (accept_language or "").split(","):
        tag, *params = item.split(";")
        q = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = min(float(value), 1.0)
                except ValueError:
                    q = 0.0
        if _primary(tag) in LANGUAGES and q > best_q:  # ties: the first listed wins
            best, best_q = _primary(tag), q
    return best


def format_time(moment: datetime, lang: str) -> Markup:
    """A ``<time>`` element: KST on the Korean page, KST and UTC on the English one."""
    if moment.tzinfo is None:  # stored times are UTC
        moment = moment.replace(tzinfo=UTC)
    kst, utc = moment.astimezone(KST), moment.astimezone(UTC)
    if lang == "ko":
        shown = f"{kst.year}년 {kst.month}월 {kst.day}일 {kst:%H:%M} (한국 시간)"
    else:
        shown = (
            f"{kst.day} {MONTHS[kst.month - 1]} {kst.year}, {kst:%H:%M} KST"
            f" ({utc.day} {MONTHS[utc.month - 1]} {utc:%H:%M} UTC)"
        )
    return Markup('<time datetime="{}">{}</time>').format(f"{utc:%Y-%m-%dT%H:%M:%SZ}", shown)


@dataclass(frozen=True)
class NoticeText:
    """One notice as the page shows it: in one language, every variable filled."""

    seq: int
    locale: str  # the language of the text, which may differ from the page's
    title: str
    body: str
    at: datetime | None
    # The legal item "what the person can do to limit the harm" (alimi.compliance), if given.
    what_you_can_do: str = ""


def public_notices(notices: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The notices that were approved to go out, newest first."""
    shown = [n for n in notices if n.get("state") in PUBLIC_STATES]
    return sorted(shown, key=lambda n: int(n.get("seq", 0)), reverse=True)


def notice_text(notice: Mapping[str, Any], *, lang: str, facts: Mapping[str, str]) -> NoticeText:
    """The notice in ``lang`` if it has that translation, else in its own language."""
    texts: Mapping[str, Mapping[str, Any]] = notice.get("texts") or {}
    own = notice.get("locale") or DEFAULT_LANGUAGE
    locale = next((k for k in texts if k == lang), None) or next(
        (k for k in texts if _primary(k) == lang), None
    )
    if locale is None:
        locale = own
    words = texts.get(locale) or {"body": notice.get("body", ""), "title": notice.get("title", "")}
    values = {**facts, templates.NAME: _neutral(notice, locale)}
    disclosure: Mapping[str, Any] = words.get("disclosure") or {}
    return NoticeText(
        seq=int(notice.get("seq", 0)),
        locale=locale,
        title=render.fill(str(words.get("title") or ""), values),
        body=render.fill(str(words.get("body") or ""), values),
        at=notice.get("approved_at") or notice.get("created_at"),
        what_you_can_do=render.fill(str(disclosure.get("what_you_can_do") or ""), values).strip(),
    )


def _neutral(notice: Mapping[str, Any], locale: str) -> str:
    """What stands in for ``#{name}``: the template's word for an unknown name."""
    template = templates.REGISTRY.get(notice.get("template") or templates.DEFAULT_TEMPLATE)
    if template is not None and locale in template.locales:
        return template.locales[locale].default_name
    return NEUTRAL_NAME.get(_primary(locale), NEUTRAL_NAME["en"])


def _blocks(text: str) -> list[list[str]]:
    """Paragraphs (split at blank lines) of lines, for the templates' ``blocks`` filter."""
    blocks = [b for b in re.split(r"\n\s*\n", text.strip()) if b.strip()]
    return [block.strip().splitlines() for block in blocks]


TEMPLATES.filters.update(blocks=_blocks, primary=_primary, format_time=format_time)


def render_page(
    incident: Mapping[str, Any],
    notices: Sequence[Mapping[str, Any]],
    *,
    lang: str,
    page_url: str,
) -> str:
    """The status page of ``incident`` in ``lang``; only public notices, newest first."""
    title = str(incident.get("title", ""))
    contact = str(incident.get("contact") or "")
    facts = {"incident_title": title, "contact": contact, "status_url": page_url}
    shown = [notice_text(n, lang=lang, facts=facts) for n in public_notices(notices)]
    status = str(incident.get("status", ""))
    status_word, status_line = STATUS_WORDS[lang].get(status, (status, ""))
    other = next(x for x in LANGUAGES if x != lang)
    # What the person should do: the newest "what you can do" item of the notices, else
    # the latest notice's whole text.
    todo = next((n for n in shown if n.what_you_can_do), shown[0] if shown else None)
    return TEMPLATES.get_template("status_page.html").render(
        css=CSS,
        lang=lang,
        words=WORDS[lang],
        language_names=LANGUAGE_NAMES[lang],
        title=title,
        contact=contact,
        status_word=status_word,
        status_line=status_line,
        other=other,
        other_name=ENDONYMS[other],
        discovered_at=incident.get("discovered_at"),
        shown=shown,
        todo=todo,
    )


def render_not_found() -> str:
    """The one 404 page, in both languages: it says nothing about what exists."""
    return TEMPLATES.get_template("not_found.html").render(css=CSS, lang="ko")


NOT_FOUND_PAGE = render_not_found()

INCIDENT_FIELDS = {"title": 1, "status": 1, "contact": 1, "status_url": 1, "discovered_at": 1}
NOTICE_FIELDS = {
    "_id": 0,
    "seq": 1,
    "state": 1,
    "template": 1,
    "locale": 1,
    "body": 1,
    "title": 1,
    "texts": 1,
    "created_at": 1,
    "approved_at": 1,
}


async def find_public(
    store: Store, public_id: str
) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
    """The incident with this public id and its public notices; never by internal id."""
    incident = await store.incidents.find_one({"public_id": public_id}, INCIDENT_FIELDS)
    if incident is None:
        return None
    notices = (
        await store.notices.find(
            {"incident_id": incident["_id"], "state": {"$in": sorted(PUBLIC_STATES)}},
            NOTICE_FIELDS,
        )
        .sort("seq", -1)
        .to_list()
    )
    return incident, notices


def _not_modified(request: web.Request, etag: str) -> bool:
    tags = request.if_none_match
    return tags is not None and any(t.value in (etag, "*") for t in tags)


@routes.get("/s/{public_id}")
@access.public
async def status_page(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    public_id = request.match_info["public_id"]
    found = await find_public(ctx.store, public_id) if PUBLIC_ID.fullmatch(public_id) else None
    if found is None:
        return web.Response(
            status=404,
            text=NOT_FOUND_PAGE,
            content_type="text/html",
            charset="utf-8",
            headers={
                **SECURITY_HEADERS,
                "Cache-Control": "no-store",
                "Content-Language": "ko, en",
            },
        )
    incident, notices = found
    lang = negotiate(request.query.get("lang"), request.headers.get("Accept-Language"))
    page_url = incident.get("status_url") or (
        f"{ctx.settings.public_base_url.rstrip('/')}/s/{public_id}"
    )
    page = render_page(incident, notices, lang=lang, page_url=page_url)
    headers = {
        **SECURITY_HEADERS,
        "Cache-Control": CACHE_CONTROL,
        "Content-Language": lang,
        "Vary": "Accept-Language",
    }
    etag = hashlib.sha256(page.encode()).hexdigest()[:32]
    if _not_modified(request, etag):
        response = web.Response(status=304, headers=headers)
    else:
        response = web.Response(
            text=page, content_type="text/html", charset="utf-8", headers=headers
        )
    response.etag = etag
    return response
