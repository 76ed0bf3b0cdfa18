"""What a person sees: the status page and the operator console in a real headless Chromium.

Every service runs as a real process; an operator posts an incident with its
legal items (PIPA) in Korean and English and a second key approves it, then a
progress update. Chromium (``tests/browser.py``, over the DevTools protocol)
loads the public status page in both languages at a phone's size (390 by 844,
with the phone's viewport rules) and a desktop's (1280 by 800), and the console
with the admin key in the URL fragment. The checks read the rendered page:
``innerText`` (only what is visible), computed font sizes, bounding boxes and
scroll widths (no sideways scrolling on a phone), and the script errors and
Content-Security-Policy violations the browser reported. Full-page screenshots
go to the test's tmp dir and to ``test-artifacts/browser/`` for CI to keep.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from browser import Browser, Page, chromium_path

from alimi_devstack import Stack, eventually
from support import approve, operator_session

pytestmark = pytest.mark.e2e

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "browser"
PHONE = (390, 844)
DESKTOP = (1280, 800)

SUBJECTS = [
    {"external_id": "web-1", "name": "김민준", "phone": "010-2345-1234", "tags": ["web"]},
    {
        "external_id": "web-2",
        "name": "Jane Roe",
        "phone": "+82 10 9876 2345",
        "locale": "en",
        "channels": ["sms"],
        "tags": ["web"],
    },
]
PERSONAL = ["김민준", "Jane Roe", "web-1", "web-2", "2345-1234", "23451234", "9876", "98762345"]
TITLE = "회원 정보 유출"
CONTACT = "고객센터 1588-0000"
TODO = {
    "ko": "비밀번호를 바꾸고, 모르는 번호로 온 문자의 링크는 열지 마세요.",
    "en": "Change your password, and do not open links in texts from unknown numbers.",
}
FIRST = {
    "ko": "#{name}님, 회원 정보가 유출되었습니다. 자세한 내용: #{status_url}",
    "en": "Dear #{name}, member data leaked. Details: #{status_url}",
}
UPDATE = {"ko": "원인을 찾아 막았습니다.", "en": "We found the cause and closed it."}


def _disclosure(lang: str) -> dict[str, Any]:
    ko = lang == "ko"
    return {
        "leaked_items": ["이름", "전화번호"] if ko else ["name", "phone number"],
        "when_and_how": "11월 27일 외부 침입" if ko else "An intrusion on 27 November",
        "what_you_can_do": TODO[lang],
        "countermeasures": "접근 차단, 보안 점검" if ko else "Access blocked; a security review",
    }


@pytest.fixture
def chromium() -> str:
    """Checked before the stack starts: a missing browser fails in CI, skips on a laptop."""
    exe = chromium_path()
    if exe is None:
        reason = "chromium is not installed; run `bash .ci/ensure-chromium` (make test does)"
        if os.environ.get("CI"):
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    return exe


@pytest.fixture
async def browser(chromium: str, tmp_path: Path) -> AsyncIterator[Browser]:
    async with Browser.launch(tmp_path / "chromium") as b:
        yield b


async def _json(resp: aiohttp.ClientResponse, status: int) -> Any:
    assert resp.status == status, await resp.text()
    return await resp.json()


async def _incident(
    http: aiohttp.ClientSession, stack: Stack, *, ago: timedelta = timedelta(hours=1)
) -> dict[str, Any]:
    """An incident discovered ``ago``, with its legal items in Korean and English, waiting
    for approval."""
    async with http.post(f"{stack.intake_url}/v1/subjects", json=SUBJECTS) as resp:
        await _json(resp, 200)
    discovered = datetime.now(UTC) - ago
    incident = {
        "title": TITLE,
        "severity": "high",
        "discovered_at": discovered.isoformat(),
        "jurisdictions": ["KR-PIPA"],
        "contact": CONTACT,
        "notice": {
            "body": FIRST["ko"],
            "disclosure": _disclosure("ko"),
            "translations": {"en": {"body": FIRST["en"], "disclosure": _disclosure("en")}},
        },
        "audience": {"filter": {"tags_any": ["web"]}},
    }
    async with http.post(f"{stack.intake_url}/v1/incidents", json=incident) as resp:
        created: dict[str, Any] = await _json(resp, 201)
    return created


async def _progress(http: aiohttp.ClientSession, stack: Stack, created: dict[str, Any]) -> None:
    """The first notice approved, then a progress update (cause identified), approved."""
    await approve(http, stack, created["notice_id"])
    update = {
        "status": "identified",
        "notice": {"body": UPDATE["ko"], "translations": {"en": {"body": UPDATE["en"]}}},
    }
    url = f"{stack.intake_url}/v1/incidents/{created['incident_id']}/notices"
    async with http.post(url, json=update) as resp:
        later = await _json(resp, 201)
    await approve(http, stack, later["notice_id"])


def _keep(shot: Path) -> None:
    """Copy a screenshot where CI collects the test artifacts."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shutil.copy2(shot, ARTIFACTS / shot.name)


# What a person sees of the status page, measured in the page.
STATUS_PAGE_PROBE = """(() => {
  const box = (e) => e.getBoundingClientRect();
  const shown = (e) => box(e).width > 0 && getComputedStyle(e).visibility !== "hidden";
  const texts = [...document.querySelectorAll("p, li, a, h1, h2, h3, time, strong")]
    .filter((e) => shown(e) && e.innerText.trim());
  const todo = document.querySelector("section.todo");
  const link = document.querySelector("nav a");
  return {
    lang: document.documentElement.lang,
    text: document.body.innerText,
    html: document.documentElement.outerHTML,
    innerWidth, innerHeight,
    scrollWidth: document.documentElement.scrollWidth,
    sticksOut: [...document.body.querySelectorAll("*")]
      .filter((e) => shown(e) && (box(e).right > innerWidth + 0.5 || box(e).left < -0.5))
      .map((e) => e.tagName),
    smallestFont: Math.min(...texts.map((e) => parseFloat(getComputedStyle(e).fontSize))),
    bodyFont: parseFloat(getComputedStyle(document.querySelector("main li div p")).fontSize),
    todoFont: parseFloat(getComputedStyle(document.querySelector(".todo div p")).fontSize),
    firstInMain: document.querySelector("main").firstElementChild.className,
    headerBottom: box(document.querySelector("header")).bottom,
    todoTop: box(todo).top + scrollY,
    todoHeadingBottom: box(todo.querySelector("h2")).bottom + scrollY,
    todoText: todo.innerText,
    mainWidth: box(document.querySelector("main")).width,
    link: { width: box(link).width, height: box(link).height, text: link.innerText },
    timeline: [...document.querySelectorAll("#timeline-h + ol h3")].map((h) => h.innerText),
  };
})()"""

WORDS = {
    "ko": {
        "todo": "지금 하실 일",
        "status": "원인 확인",
        "timeline": ["2번째 안내", "첫 안내"],
        "other": "English",
    },
    "en": {
        "todo": "What you should do",
        "status": "Cause identified",
        "timeline": ["Notice 2", "First notice"],
        "other": "한국어",
    },
}


async def _status_page(browser: Browser, url: str, size: tuple[int, int], shot: Path) -> Any:
    page = await browser.new_page(*size, mobile=size == PHONE)
    try:
        await page.goto(url)
        seen = await page.evaluate(STATUS_PAGE_PROBE)
        _keep(await page.screenshot(shot))
        assert page.problems == [], page.problems  # e.g. a style the CSP blocked
        return seen
    finally:
        await page.close()


async def test_a_person_reads_the_status_page_on_a_phone_and_a_desktop_in_korean_and_english(
    browser: Browser, stack: Stack, tmp_path: Path
) -> None:
    async with operator_session(stack) as http:
        created = await _incident(http, stack)
        await _progress(http, stack, created)
    for lang in ("ko", "en"):
        words = WORDS[lang]
        for size in (PHONE, DESKTOP):
            kind = "phone" if size == PHONE else "desktop"
            url = f"{stack.intake_url}/s/{created['public_id']}?lang={lang}"
            seen = await _status_page(browser, url, size, tmp_path / f"status-{lang}-{kind}.png")
            where = f"{lang} at {size[0]}x{size[1]}"

            assert seen["lang"] == lang, where
            for text in (TITLE, words["status"], words["todo"], CONTACT, TODO[lang]):
                assert text in seen["text"], (where, text)
            assert UPDATE[lang] in seen["text"], where
            # "What you should do" comes first after the header, holds the legal item in
            # this language, and its heading is on the first screen without scrolling.
            assert seen["firstInMain"] == "todo", where
            assert TODO[lang] in seen["todoText"], where
            assert seen["todoHeadingBottom"] <= seen["innerHeight"], where
            assert seen["timeline"] == words["timeline"], where  # newest first
            assert seen["link"]["text"] == words["other"], where
            # Readable: body text at least 16 px, what to do larger still, nothing below 15 px.
            assert seen["bodyFont"] >= 16, where
            assert seen["todoFont"] > seen["bodyFont"], where
            assert seen["smallestFont"] >= 15, where
            # No sideways scrolling, nothing sticking out of the window.
            # On a phone, a page without the viewport meta is laid out 980 px wide, and one
            # with something too wide widens the viewport to fit it: either shows here.
            assert seen["innerWidth"] == size[0], where
            assert seen["scrollWidth"] <= seen["innerWidth"], where
            assert seen["sticksOut"] == [], where
            for personal in PERSONAL:
                assert personal not in seen["html"], (where, personal)
            if size == PHONE:
                assert seen["link"]["height"] >= 44, where  # a thumb can hit the language link
            else:
                assert seen["mainWidth"] <= 42 * 16, where  # lines short enough to read


LEGEND = "[...document.querySelectorAll('#chart svg text[data-channel]')].map((t) => t.textContent)"
CONSOLE_INCIDENT_PROBE = """(() => {
  const first = document.querySelector("#counts-body table");  // notice 1
  const cells = (tr) => [...tr.children].map((c) => c.innerText);
  const points = (line) => line.getAttribute("points").trim().split(/\\s+/)
    .map((xy) => Number(xy.split(",")[1]));
  return {
    heading: document.getElementById("incident-h").innerText,
    countdown: document.getElementById("countdown").innerText,
    heads: first ? cells(first.querySelector("thead tr")) : [],
    rows: first ? [...first.querySelectorAll("tbody tr")].map(cells) : [],
    live: document.getElementById("counts").getAttribute("aria-live"),
    lines: [...document.querySelectorAll("#chart svg polyline")].map((line) => ({
      channel: line.dataset.channel,
      ys: points(line),  // SVG y grows downwards: a rising line has falling ys
      dash: line.getAttribute("stroke-dasharray") || "",
    })),
    legend: %s,
    chartLabel: document.querySelector("#chart svg").getAttribute("aria-labelledby"),
    deadLetters: document.getElementById("dead-letters").innerText,
    text: document.body.innerText,
    scrollWidth: document.documentElement.scrollWidth,
    innerWidth,
  };
})()""".replace("%s", LEGEND)
REACHED = ("sent", "delivered", "undelivered")


async def _completed(http: aiohttp.ClientSession, stack: Stack, incident_id: str) -> Any:
    """The incident once its notice completed and every delivery report is in.

    ``sent`` is final for completion, but a delivery report still turns it
    into ``delivered`` or ``undelivered``: until none is left, the counts the
    page shows a moment later could differ from the ones read here.
    """

    async def done() -> dict[str, Any] | None:
        async with http.get(f"{stack.intake_url}/v1/incidents/{incident_id}") as resp:
            view: dict[str, Any] = await _json(resp, 200)
        settled = {"delivered", "undelivered", "failed", "skipped", "halted"}
        notice = view["notices"][0]
        if notice["state"] != "completed" or not set(notice["counts"]) <= settled:
            return None
        return view

    return await eventually(done, 90, "the notice to complete with every report in")


async def test_an_operator_watches_an_incident_progress_in_the_console(
    browser: Browser, stack: Stack, tmp_path: Path
) -> None:
    page: Page = await browser.new_page(*DESKTOP, mobile=False)
    async with operator_session(stack) as http:
        created = await _incident(http, stack)
        await page.goto(f"{stack.intake_url}/console#key={stack.api_key('admin')}")
        # The list, newest first, with the incident and its one notice.
        rows = await page.wait_for(
            "[...document.querySelectorAll('#list-newest tbody tr')]"
            ".map((tr) => [...tr.children].map((td) => td.innerText))"
        )
        assert len(rows) == 1, rows
        title, severity, status, _opened, deadline, notices = rows[0]
        assert (title, severity, status, notices) == (TITLE, "high", "investigating", "1")
        assert re.search(r"\(70 h \d\d min \d\d s left\)$", deadline), deadline
        # The key left the address bar for this tab's session storage; no cookie.
        assert await page.evaluate("location.hash") == ""
        assert await page.evaluate("sessionStorage.length") == 1
        assert await page.evaluate("document.cookie") == ""
        _keep(await page.screenshot(tmp_path / "console-list.png"))

        await page.evaluate("document.querySelector('#list-newest tbody a').click()")
        await page.wait_for(
            "document.getElementById('counts-body').innerText.includes('No receipts')"
        )
        assert "Notice 1: pending approval" in await page.evaluate("document.body.innerText")

        # Approved while the operator watches: the page follows by itself.
        await approve(http, stack, created["notice_id"])
        view = await _completed(http, stack, created["incident_id"])
    counts = view["notices"][0]["counts_by_channel"]
    assert set(counts) == {"kakao", "sms"}
    reached = {c: sum(n for s, n in per.items() if s in REACHED) for c, per in counts.items()}
    labels = json.dumps(sorted(f"{c} {n}" for c, n in reached.items()), separators=(",", ":"))
    await page.wait_for(
        "document.body.innerText.includes('Notice 1: completed')"
        f" && JSON.stringify({LEGEND}.sort()) === {labels!r}",
        timeout_s=20,
    )
    # Counts per channel: the table a person reads comes to hold the API's numbers
    # (the page polls; it may still show the counts of the poll before).
    expected = {
        channel: {status.replace("_", " "): str(n) for status, n in per_status.items()}
        for channel, per_status in counts.items()
    }
    table: dict[str, dict[str, str]] = {}

    async def page_shows_the_counts() -> dict[str, Any] | None:
        nonlocal table
        seen: dict[str, Any] = await page.evaluate(CONSOLE_INCIDENT_PROBE)
        table = {r[0]: dict(zip(seen["heads"][1:], r[1:], strict=True)) for r in seen["rows"]}
        shown = {c: {s: table.get(c, {}).get(s) for s in per} for c, per in expected.items()}
        return seen if set(table) == set(expected) and shown == expected else None

    try:
        seen = await eventually(page_shows_the_counts, 20, "the console to show the counts")
    except AssertionError:
        raise AssertionError(f"the console shows {table}, the API says {expected}") from None
    _keep(await page.screenshot(tmp_path / "console-incident.png"))

    assert seen["heading"] == TITLE
    assert seen["live"] == "polite"
    # The countdown to the legal deadline (72 h after discovery, an hour ago), every second.
    assert re.fullmatch(r"Legal deadline: 70 h \d\d min \d\d s left", seen["countdown"])
    await page.wait_for(
        f"document.getElementById('countdown').innerText !== {seen['countdown']!r}", timeout_s=3
    )
    # The chart: a line per channel that rose from nothing, told apart by its dash
    # pattern and a text label as well as its colour.
    assert {line["channel"] for line in seen["lines"]} == set(counts)
    assert len({line["dash"] for line in seen["lines"]}) == len(counts)
    for line in seen["lines"]:
        assert line["ys"][0] > line["ys"][-1], line
    assert sorted(seen["legend"]) == sorted(f"{c} {n}" for c, n in reached.items())
    assert seen["chartLabel"] == "chart-title chart-desc"
    assert "Notice 1: 0 given up on" in seen["deadLetters"], seen["deadLetters"]
    assert seen["scrollWidth"] <= seen["innerWidth"]
    for personal in PERSONAL:
        assert personal not in seen["text"], personal
    assert page.problems == [], page.problems


async def test_the_console_says_plainly_that_a_passed_legal_deadline_is_overdue_and_by_how_much(
    browser: Browser, stack: Stack, tmp_path: Path
) -> None:
    async with operator_session(stack) as http:
        created = await _incident(http, stack, ago=timedelta(days=10))
    page: Page = await browser.new_page(*DESKTOP, mobile=False)
    key = stack.api_key("admin")
    await page.goto(f"{stack.intake_url}/console#key={key}&incident={created['incident_id']}")
    warning = await page.wait_for("document.getElementById('overdue')?.innerText")
    assert warning.startswith("Overdue by 7d 0h: the 72-hour legal deadline passed at ")
    assert warning.endswith("Tell the affected people without further delay.")
    facts = await page.evaluate(
        "Object.fromEntries([...document.querySelectorAll('#incident-facts dt')]"
        ".map((dt) => [dt.innerText, dt.nextElementSibling.innerText]))"
    )
    deadline = facts["Legal deadline (72 h after discovery)"]
    assert re.search(r": passed, overdue by 16[78] h \d\d min \d\d s$", deadline), deadline
    countdown = await page.evaluate("document.getElementById('countdown').innerText")
    assert re.fullmatch(r"Legal deadline: overdue by 16[78] h \d\d min \d\d s", countdown)
    _keep(await page.screenshot(tmp_path / "console-overdue.png"))
    assert page.problems == [], page.problems
