"""The public status page of an incident: ``GET /s/{public_id}``.

The link every message carries. One page per incident and language, the same
for everyone who follows the link, so it never holds personal data: ``#{name}``
in a notice becomes the template's neutral word ("고객", "customer") and only
the incident's public facts fill the other variables.

The rendering functions take plain data (the incident and notice documents)
and return an HTML string; every value that comes from the database goes
through :func:`html.escape`. The page is plain HTML with one inline style
block, allowed by the Content-Security-Policy through its hash; no script.

Times are shown in Korea Standard Time (the time of the organisation and of
most people told); the English page adds UTC. Korea has kept UTC+9 without
daylight saving since 1988, so a fixed offset needs no time-zone database.
"""

from __future__ import annotations

import base64
import hashlib
import html
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from aiohttp import web

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

CSS = (
    ":root{color-scheme:light}"
    "*{box-sizing:border-box}"
    "html{-webkit-text-size-adjust:100%;text-size-adjust:100%}"
    "body{margin:0;background:#fff;color:#1b1b1b;"
    'font:1.0625rem/1.65 system-ui,-apple-system,"Apple SD Gothic Neo","Malgun Gothic",'
    '"Noto Sans KR",sans-serif;word-break:keep-all;overflow-wrap:anywhere}'
    "header,main,footer{max-width:40rem;margin:0 auto;padding:0 1rem}"
    "nav{text-align:right;padding-top:.5rem}"
    "nav a{display:inline-block;min-height:2.75rem;padding:.55rem .75rem}"
    "a{color:#0b57d0}"
    "a:focus-visible{outline:3px solid #0b57d0;outline-offset:2px}"
    "h1{font-size:1.6rem;line-height:1.3;margin:.25rem 0 1rem}"
    "h2{font-size:1.25rem;line-height:1.35;margin:1.75rem 0 .5rem}"
    "h3{font-size:1.0625rem;margin:0 0 .25rem}"
    ".kicker{margin:0;color:#4a4a4a;font-size:.95rem}"
    ".status{border-left:.375rem solid #3c3c3c;background:#f3f3f3;padding:.5rem 1rem;"
    "margin-bottom:1.25rem}"
    ".status p{margin:.25rem 0}"
    ".now{font-size:1.2rem}"
    ".todo{border:3px solid #8a4b00;border-radius:.5rem;background:#fff6e8;padding:.25rem 1rem;"
    "margin-top:0}"
    ".todo h2{font-size:1.4rem;margin-top:.75rem}"
    ".todo .act{font-size:1.125rem}"
    ".meta{color:#4a4a4a;font-size:.95rem;margin:0 0 .5rem}"
    "ol{list-style:none;margin:0;padding:0}"
    "li{border-top:1px solid #c8c8c8;padding:1rem 0}"
    "footer{color:#4a4a4a;font-size:.95rem;padding-top:1.5rem;padding-bottom:2rem}"
)
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


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


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


def format_time(moment: datetime, lang: str) -> str:
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
    return f'<time datetime="{utc:%Y-%m-%dT%H:%M:%SZ}">{_e(shown)}</time>'


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


def _paragraphs(text: str) -> str:
    blocks = [b for b in re.split(r"\n\s*\n", text.strip()) if b.strip()]
    return "".join(
        "<p>" + "<br>".join(_e(line) for line in block.strip().splitlines()) + "</p>"
        for block in blocks
    )


def _text_block(notice: NoticeText, lang: str, text: str | None = None, css: str = "") -> str:
    """``text`` (the notice's body by default) marked with its language."""
    words = WORDS[lang]
    note = ""
    if _primary(notice.locale) != lang:
        language = LANGUAGE_NAMES[lang].get(_primary(notice.locale), notice.locale)
        note = f'<p class="meta">{_e(words["only_in"].format(language=language))}</p>'
    shown = _paragraphs(notice.body if text is None else text)
    classes = f' class="{css}"' if css else ""
    return f'{note}<div lang="{_e(notice.locale)}"{classes}>{shown}</div>'


def _todo(shown: Sequence[NoticeText], lang: str) -> str:
    """What the person should do: the newest "what you can do" item of the notices,
    else the latest notice's whole text."""
    words = WORDS[lang]
    if not shown:
        return f"<p>{_e(words['no_notice'])}</p>"
    with_item = next((n for n in shown if n.what_you_can_do), None)
    source = with_item or shown[0]
    text = with_item.what_you_can_do if with_item is not None else None
    when = (
        f'<p class="meta">{_e(words["todo_from"]).format(when=format_time(source.at, lang))}</p>'
        if source.at
        else ""
    )
    return when + _text_block(source, lang, text, css="act" if text else "")


def _timeline_entry(notice: NoticeText, lang: str) -> str:
    words = WORDS[lang]
    heading_lang = ""
    if notice.title:
        heading, heading_lang = notice.title, f' lang="{_e(notice.locale)}"'
    elif notice.seq == 1:
        heading = words["first_notice"]
    else:
        heading = words["notice_n"].format(seq=notice.seq)
    when = f'<p class="meta">{format_time(notice.at, lang)}</p>' if notice.at else ""
    return (
        f'<li><article aria-labelledby="notice-{notice.seq}">'
        f'<h3 id="notice-{notice.seq}"{heading_lang}>{_e(heading)}</h3>{when}'
        f"{_text_block(notice, lang)}</article></li>"
    )


def render_page(
    incident: Mapping[str, Any],
    notices: Sequence[Mapping[str, Any]],
    *,
    lang: str,
    page_url: str,
) -> str:
    """The status page of ``incident`` in ``lang``; only public notices, newest first."""
    words = WORDS[lang]
    title = str(incident.get("title", ""))
    contact = str(incident.get("contact") or "")
    facts = {"incident_title": title, "contact": contact, "status_url": page_url}
    shown = [notice_text(n, lang=lang, facts=facts) for n in public_notices(notices)]
    status = str(incident.get("status", ""))
    status_word, status_line = STATUS_WORDS[lang].get(status, (status, ""))
    other = next(x for x in LANGUAGES if x != lang)

    status_meta = ""  # in the header with the status: on a phone, seen without scrolling
    if incident.get("discovered_at"):
        status_meta += (
            f'<p class="meta">{_e(words["discovered"])}: '
            f"{format_time(incident['discovered_at'], lang)}</p>"
        )
    if shown and shown[0].at:
        status_meta += (
            f'<p class="meta">{_e(words["last_notice"])}: {format_time(shown[0].at, lang)}</p>'
        )

    if shown:
        timeline = f"<ol reversed>{''.join(_timeline_entry(n, lang) for n in shown)}</ol>"
    else:
        timeline = f"<p>{_e(words['no_notice'])}</p>"

    contact_section = (
        f'<section aria-labelledby="contact-h"><h2 id="contact-h">{_e(words["contact"])}</h2>'
        f"<p>{_e(contact)}</p></section>"
        if contact.strip()
        else ""
    )
    return (
        f'<!doctype html>\n<html lang="{lang}">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<meta name="robots" content="noindex">\n'
        f"<title>{_e(title)} · {_e(words['page'])}</title>\n"
        f"<style>{CSS}</style>\n</head>\n<body>\n"
        f'<header>\n<nav aria-label="{_e(words["language_nav"])}">'
        f'<a href="?lang={other}" hreflang="{other}" lang="{other}">{_e(ENDONYMS[other])}</a>'
        "</nav>\n"
        f'<p class="kicker">{_e(words["kicker"])}</p>\n<h1>{_e(title)}</h1>\n'
        f'<div class="status"><p class="now">{_e(words["status"])}: '
        f"<strong>{_e(status_word)}</strong></p>"
        f"<p>{_e(status_line)} {_e(words['updates_here'])}</p>{status_meta}</div>\n</header>\n"
        "<main>\n"
        f'<section class="todo" aria-labelledby="todo-h">'
        f'<h2 id="todo-h">{_e(words["todo"])}</h2>{_todo(shown, lang)}</section>\n'
        f"{contact_section}\n"
        f'<section aria-labelledby="timeline-h">'
        f'<h2 id="timeline-h">{_e(words["timeline"])}</h2>{timeline}</section>\n'
        "</main>\n"
        f"<footer><p>{_e(words['footer'])}</p></footer>\n"
        "</body>\n</html>\n"
    )


def render_not_found() -> str:
    """The one 404 page, in both languages: it says nothing about what exists."""
    return (
        '<!doctype html>\n<html lang="ko">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<meta name="robots" content="noindex">\n'
        "<title>페이지를 찾을 수 없습니다 · Page not found</title>\n"
        f"<style>{CSS}</style>\n</head>\n<body>\n<main>\n"
        "<h1>페이지를 찾을 수 없습니다</h1>\n"
        "<p>주소를 다시 확인해 주세요. 받으신 메시지의 링크를 그대로 여시면 됩니다.</p>\n"
        '<section lang="en" aria-labelledby="en-h"><h2 id="en-h">Page not found</h2>\n'
        "<p>Please check the address: open the link exactly as it is in the message you"
        " received.</p></section>\n"
        "</main>\n</body>\n</html>\n"
    )


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
