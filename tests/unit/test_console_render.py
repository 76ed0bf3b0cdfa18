"""The operator console's page and the rows of its incident list."""

from __future__ import annotations

import base64
import hashlib
import itertools
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

from alimi_intake import console, incident_list


def test_the_inline_style_is_the_one_the_content_security_policy_allows() -> None:
    [css] = re.findall(r"<style>(.*?)</style>", console.SHELL, re.S)
    digest = base64.b64encode(hashlib.sha256(css.encode()).digest()).decode()
    policy = console.CONTENT_SECURITY_POLICY
    assert f"style-src 'sha256-{digest}'" in policy
    assert "default-src 'none'" in policy
    assert "script-src 'self';" in policy and "connect-src 'self';" in policy
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy


def test_the_page_loads_only_its_own_script_pinned_by_its_hash() -> None:
    [tag] = re.findall(r"<script[^>]*>", console.SHELL)
    assert f'src="{console.SCRIPT_PATH}"' in tag
    script = (Path(console.__file__).with_name("console.js")).read_bytes()
    digest = base64.b64encode(hashlib.sha384(script).digest()).decode()
    assert f'integrity="sha384-{digest}"' in tag
    assert "</script>" in console.SHELL.split(tag, 1)[1][:10]  # nothing inline


def test_the_key_field_is_labelled_masked_and_never_submitted_to_a_server() -> None:
    page = console.SHELL
    assert '<label for="key-input">' in page
    assert re.search(r'<input id="key-input"[^>]*type="password"[^>]*autocomplete="off"', page)
    assert "action=" not in page  # and the CSP says form-action 'none'
    assert "form-action 'none'" in console.CONTENT_SECURITY_POLICY


def test_the_counts_are_a_polite_live_region_and_the_countdown_a_timer() -> None:
    assert re.search(r'<section id="counts"[^>]*aria-live="polite"', console.SHELL)
    assert re.search(r'<p id="countdown"[^>]*role="timer"', console.SHELL)


def test_headings_go_in_order() -> None:
    levels = [int(h) for h in re.findall(r"<h([1-6])[ >]", console.SHELL)]
    assert levels[0] == 1 and levels.count(1) == 1
    assert all(b - a <= 1 for a, b in itertools.pairwise(levels))


def test_a_list_row_names_the_incident_its_deadline_and_time_left() -> None:
    now = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    incident = {
        "_id": "inc_0123456789abcdef0123",
        "title": "회원 정보 유출",
        "severity": "high",
        "status": "investigating",
        "created_at": now - timedelta(hours=2),
        "discovered_at": now - timedelta(hours=3),
        "deadline": now + timedelta(hours=69),
        "contact": "고객센터 1599-0000",
    }
    assert incident_list.incident_summary(incident, notices=2, now=now) == {
        "incident_id": "inc_0123456789abcdef0123",
        "title": "회원 정보 유출",
        "severity": "high",
        "status": "investigating",
        "created_at": "2026-11-28T10:00:00+00:00",
        "deadline": "2026-12-01T09:00:00+00:00",
        "seconds_left": 69 * 3600,
        "notices": 2,
    }


def test_without_a_stored_deadline__then_it_is_72_hours_after_discovery_and_may_be_past() -> None:
    now = datetime(2026, 12, 5, tzinfo=UTC)
    incident = {
        "_id": "inc_0123456789abcdef0123",
        "title": "t",
        "severity": "low",
        "status": "resolved",
        "created_at": datetime(2026, 11, 28, tzinfo=UTC),
        "discovered_at": datetime(2026, 11, 28, tzinfo=UTC),
    }
    row = incident_list.incident_summary(incident, notices=0, now=now)
    assert row["deadline"] == "2026-12-01T00:00:00+00:00"
    assert row["seconds_left"] == -4 * 24 * 3600
