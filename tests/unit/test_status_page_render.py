"""Rendering of the public status page: languages, escaping, order, what stays off it."""

from __future__ import annotations

import base64
import hashlib
import itertools
import re
from datetime import UTC, datetime
from typing import Any

import markupsafe
import pytest

from alimi_intake import status_page
from alimi_intake.status_page import negotiate, render_not_found, render_page

PAGE_URL = "https://status.example.test/s/Zk3pQ9xY7bTq2LmN4vRs8w"
HOSTILE = '<script>alert("x")</script>'


def incident(**changes: Any) -> dict[str, Any]:
    return {
        "_id": "inc_0123456789abcdef0123",
        "public_id": "Zk3pQ9xY7bTq2LmN4vRs8w",
        "title": "회원 정보 유출",
        "status": "investigating",
        "contact": "고객센터 1599-0000",
        "discovered_at": datetime(2026, 11, 28, 0, 0, tzinfo=UTC),
        "status_url": PAGE_URL,
    } | changes


def notice(seq: int, body: str, **changes: Any) -> dict[str, Any]:
    return {
        "seq": seq,
        "state": "approved",
        "template": "breach_notice" if seq == 1 else "progress_update",
        "locale": "ko",
        "body": body,
        "title": "",
        "texts": {"ko": {"body": body, "title": ""}},
        "created_at": datetime(2026, 11, 28, seq, 0, tzinfo=UTC),
        "approved_at": datetime(2026, 11, 28, seq, 30, tzinfo=UTC),
    } | changes


def with_english(n: dict[str, Any], body: str, title: str = "") -> dict[str, Any]:
    return n | {"texts": {**n["texts"], "en": {"body": body, "title": title}}}


def test_the_korean_page_names_the_status_in_words_and_declares_its_language() -> None:
    page = render_page(
        incident(), [notice(1, "비밀번호를 바꿔 주세요.")], lang="ko", page_url=PAGE_URL
    )
    assert page.startswith('<!doctype html>\n<html lang="ko">')
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in page
    assert "<h1>회원 정보 유출</h1>" in page
    assert "조사 중" in page
    assert "investigating" not in page
    assert "지금 하실 일" in page
    assert "비밀번호를 바꿔 주세요." in page
    assert "고객센터 1599-0000" in page
    assert '<a href="?lang=en" hreflang="en" lang="en">English</a>' in page


def test_the_english_page_uses_the_english_translation_and_words() -> None:
    n = with_english(notice(1, "비밀번호를 바꿔 주세요."), "Please change your password.")
    page = render_page(incident(status="identified"), [n], lang="en", page_url=PAGE_URL)
    assert '<html lang="en">' in page
    assert "Cause identified" in page
    assert "What you should do" in page
    assert '<div lang="en"><p>Please change your password.</p></div>' in page
    assert "비밀번호를 바꿔 주세요." not in page
    assert '<a href="?lang=ko" hreflang="ko" lang="ko">한국어</a>' in page


def test_when_a_notice_has_no_text_in_the_page_language__then_its_own_is_shown_and_marked() -> None:
    page = render_page(
        incident(), [notice(1, "비밀번호를 바꿔 주세요.")], lang="en", page_url=PAGE_URL
    )
    assert "This notice is only available in Korean." in page
    assert '<div lang="ko"><p>비밀번호를 바꿔 주세요.</p></div>' in page


@pytest.mark.parametrize("lang", ["ko", "en"])
def test_hostile_text_anywhere_is_escaped(lang: str) -> None:
    n = with_english(
        notice(1, f"본문 {HOSTILE}", title=f"제목 {HOSTILE}"),
        f"body {HOSTILE}",
        f"title {HOSTILE}",
    )
    n["texts"]["ko"]["title"] = f"제목 {HOSTILE}"
    what_to_do = with_what_to_do(notice(2, "본문"), ko=HOSTILE)
    page = render_page(
        incident(
            title=HOSTILE, contact=f'"><img src=x onerror=alert(1)> {HOSTILE}', status=HOSTILE
        ),
        [what_to_do, n],
        lang=lang,
        page_url=PAGE_URL,
    )
    assert "<script" not in page
    assert "<img" not in page
    escaped = str(markupsafe.escape(HOSTILE))
    # title, heading, status, contact, the notice's title and body, what to do
    assert page.count(escaped) >= 7


def test_notices_are_listed_newest_first_and_the_latest_says_what_to_do() -> None:
    notices = [notice(2, "두 번째"), notice(1, "첫 번째"), notice(3, "세 번째")]
    page = render_page(incident(), notices, lang="ko", page_url=PAGE_URL)
    todo = page.split('id="todo-h"')[1].split("</section>")[0]
    assert "세 번째" in todo and "두 번째" not in todo
    timeline = page.split('id="timeline-h"')[1]
    assert timeline.index("세 번째") < timeline.index("두 번째") < timeline.index("첫 번째")
    assert "첫 안내" in timeline and "3번째 안내" in timeline


@pytest.mark.parametrize("state", ["draft", "pending_approval", "some_future_state", None])
def test_notices_not_approved_to_go_out_stay_off_the_page(state: str | None) -> None:
    hidden = notice(2, "아직 승인되지 않은 초안", state=state)
    page = render_page(incident(), [notice(1, "공개된 안내"), hidden], lang="ko", page_url=PAGE_URL)
    assert "공개된 안내" in page
    assert "아직 승인되지 않은 초안" not in page
    assert "2번째 안내" not in page


@pytest.mark.parametrize("state", ["segmenting", "sending", "completed", "halted", "failed"])
def test_notices_that_went_out_stay_on_the_page_whatever_their_delivery_state(state: str) -> None:
    page = render_page(incident(), [notice(1, "공개", state=state)], lang="ko", page_url=PAGE_URL)
    assert "<p>공개</p>" in page


def test_when_no_notice_is_public_yet__then_the_page_says_so() -> None:
    page = render_page(
        incident(), [notice(1, "초안", state="pending_approval")], lang="en", page_url=PAGE_URL
    )
    assert "No notice has been published yet." in page
    assert "<ol" not in page


@pytest.mark.parametrize(("lang", "word"), [("ko", "고객님"), ("en", "Dear customer")])
def test_variables_are_filled_with_the_incidents_facts_and_a_neutral_name(
    lang: str, word: str
) -> None:
    n = with_english(
        notice(1, "#{name}님, #{incident_title} 건입니다. #{contact} / #{status_url}"),
        "Dear #{name}, about #{incident_title}. #{contact} / #{status_url}",
    )
    page = render_page(incident(), [n], lang=lang, page_url=PAGE_URL)
    assert "#{" not in page
    assert word in page
    assert PAGE_URL in page
    assert page.count("고객센터 1599-0000") >= 2


def test_the_page_never_shows_internal_ids() -> None:
    page = render_page(incident(), [notice(1, "본문")], lang="ko", page_url=PAGE_URL)
    assert "inc_0123456789abcdef0123" not in page


def test_times_are_korean_time_on_the_korean_page_and_also_utc_on_the_english_one() -> None:
    moment = datetime(2026, 11, 28, 23, 30, tzinfo=UTC)
    assert status_page.format_time(moment, "ko") == (
        '<time datetime="2026-11-28T23:30:00Z">2026년 11월 29일 08:30 (한국 시간)</time>'
    )
    assert status_page.format_time(moment, "en") == (
        '<time datetime="2026-11-28T23:30:00Z">29 Nov 2026, 08:30 KST (28 Nov 23:30 UTC)</time>'
    )


@pytest.mark.parametrize(
    ("query", "header", "expected"),
    [
        (None, None, "ko"),
        (None, "", "ko"),
        ("en", "ko", "en"),
        ("ko", "en-US,en;q=0.9", "ko"),
        ("fr", "en", "en"),
        (None, "en-US,en;q=0.9", "en"),
        (None, "fr-FR, en;q=0.5, ko;q=0.8", "ko"),
        (None, "ko;q=0.2, EN-gb;q=0.7", "en"),
        (None, "en;q=0, ko;q=0", "ko"),
        (None, "de, *;q=0.5", "ko"),
        (None, "en;q=abc, ja", "ko"),
        (None, "en, ko", "en"),
    ],
)
def test_the_language_is_the_query_else_the_best_accepted_else_korean(
    query: str | None, header: str | None, expected: str
) -> None:
    assert negotiate(query, header) == expected


def test_the_inline_style_is_the_one_the_content_security_policy_allows() -> None:
    page = render_page(incident(), [], lang="ko", page_url=PAGE_URL)
    [css] = re.findall(r"<style>(.*?)</style>", page, re.S)
    digest = base64.b64encode(hashlib.sha256(css.encode()).digest()).decode()
    assert f"style-src 'sha256-{digest}'" in status_page.CONTENT_SECURITY_POLICY
    assert "default-src 'none'" in status_page.CONTENT_SECURITY_POLICY
    assert "<script" not in page


def test_headings_go_in_order_inside_landmarks() -> None:
    page = render_page(incident(), [notice(2, "b"), notice(1, "a")], lang="ko", page_url=PAGE_URL)
    levels = [int(h) for h in re.findall(r"<h([1-6])[ >]", page)]
    assert levels[0] == 1 and levels.count(1) == 1
    assert all(b - a <= 1 for a, b in itertools.pairwise(levels))
    for landmark in ("<header>", "<main>", "<footer>", "<nav "):
        assert landmark in page


def test_the_not_found_page_is_bilingual_and_names_nothing() -> None:
    page = render_not_found()
    assert "페이지를 찾을 수 없습니다" in page
    assert "Page not found" in page
    assert '<html lang="ko">' in page and '<section lang="en"' in page


def with_what_to_do(n: dict[str, Any], **by_locale: str) -> dict[str, Any]:
    """``n`` with the legal item "what you can do" in each given locale's disclosure."""
    texts = {k: dict(v) for k, v in n["texts"].items()}
    for locale, text in by_locale.items():
        texts[locale]["disclosure"] = {"leaked_items": ["이름"], "what_you_can_do": text}
    return n | {"texts": texts}


def _todo(page: str) -> str:
    return page.split('id="todo-h"')[1].split("</section>")[0]


@pytest.mark.parametrize(
    ("lang", "expected"), [("ko", "비밀번호를 바꿔 주세요."), ("en", "Change your password.")]
)
def test_the_legal_item_what_you_can_do_is_what_to_do_in_the_page_language(
    lang: str, expected: str
) -> None:
    first = with_english(notice(1, "이름이 유출되었습니다."), "Names leaked.")
    first = with_what_to_do(first, ko="비밀번호를 바꿔 주세요.", en="Change your password.")
    page = render_page(incident(), [notice(2, "조치 중"), first], lang=lang, page_url=PAGE_URL)
    todo = _todo(page)
    assert f'<div lang="{lang}" class="act"><p>{expected}</p></div>' in todo
    assert "조치 중" not in todo and "leaked" not in todo and "유출" not in todo
    assert "2026" in todo  # names the notice it comes from, by its time


def test_when_no_notice_says_what_you_can_do__then_the_latest_notice_is_what_to_do() -> None:
    page = render_page(
        incident(), [notice(2, "조치 중"), notice(1, "유출")], lang="ko", page_url=PAGE_URL
    )
    assert "<p>조치 중</p>" in _todo(page)


def test_what_you_can_do_has_its_variables_filled_and_is_escaped() -> None:
    first = with_what_to_do(notice(1, "본문"), ko=f"#{{contact}}로 연락 주세요 {HOSTILE}")
    page = render_page(incident(), [first], lang="ko", page_url=PAGE_URL)
    todo = _todo(page)
    assert "고객센터 1599-0000로 연락 주세요" in todo
    assert "<script" not in page and "&lt;script&gt;" in todo


def test_the_status_is_in_the_header_and_what_to_do_comes_first_in_main() -> None:
    page = render_page(incident(), [notice(1, "본문")], lang="ko", page_url=PAGE_URL)
    header = page.split("<header>")[1].split("</header>")[0]
    assert "현재 상태: <strong>조사 중</strong>" in header
    main = page.split("<main>\n")[1]
    assert main.startswith('<section class="todo" aria-labelledby="todo-h">')
    assert main.index("todo-h") < main.index("contact-h") < main.index("timeline-h")
