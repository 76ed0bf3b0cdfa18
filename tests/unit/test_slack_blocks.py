"""Block Kit payloads for the staff channel: the numbers, the status link, the text."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from typing import Any

from alimi.counters import NoticeCounts
from alimi_delivery import slack_blocks
from alimi_delivery.slack_blocks import NoticeView

VIEW = NoticeView(
    notice_id="ntc_9",
    incident_id="inc_9",
    incident_title="Customer database exposed",
    severity="high",
    seq=2,
    people=1000,
    status_url="https://status.example.kr/i/9",
)
COUNTS = NoticeCounts(
    by_channel={
        "kakao": {"sent": 40, "delivered": 650, "failed": 3},
        "sms": {"sent": 10, "delivered": 270, "undelivered": 10},
        "none": {"skipped": 12},
    },
    fell_back={"kakao": 280},
)
SUMMARY_LINE = (
    "980 reached (kakao 690, sms 290), 280 fell back from kakao, 12 skipped, 3 failed, "
    "920 delivered"
)


def _all_text(blocks: list[dict[str, Any]]) -> str:
    return json.dumps(blocks, ensure_ascii=False)


def _button_urls(blocks: list[dict[str, Any]]) -> list[str]:
    return [
        e["url"]
        for b in blocks
        if b["type"] == "actions"
        for e in b["elements"]
        if e["type"] == "button"
    ]


def test_when_counts_are_summarised__then_reached_fell_back_and_final_statuses_add_up() -> None:
    s = slack_blocks.summary(COUNTS)
    assert s["reached"] == 980
    assert s["reached_by_channel"] == {"kakao": 690, "sms": 290}
    assert s["fell_back_from"] == {"kakao": 280}
    assert (s["skipped"], s["failed"], s["delivered"], s["undelivered"]) == (12, 3, 920, 10)
    assert (s["total"], s["in_progress"]) == (995, 0)
    assert slack_blocks.counts_line(COUNTS) == SUMMARY_LINE


def test_when_a_notice_starts__then_the_parent_shows_title_severity_seq_people_and_link() -> None:
    message = slack_blocks.started(VIEW, NoticeCounts())
    header = message.blocks[0]
    assert header == {
        "type": "header",
        "text": {"type": "plain_text", "text": "Customer database exposed"},
    }
    fields = {f["text"] for f in message.blocks[1]["fields"]}
    assert {"*Severity*\nhigh", "*Notice*\n#2 (update)", "*People*\n1000"} <= fields
    assert "*Reached*\n0" in fields
    assert _button_urls(message.blocks) == ["https://status.example.kr/i/9"]
    assert message.text.startswith("Notice #2 started for Customer database exposed")
    assert "1000 people" in message.text and "https://status.example.kr/i/9" in message.text
    assert message.metadata is None


def test_when_a_milestone_is_reached__then_the_reply_has_percent_and_channel_counts() -> None:
    message = slack_blocks.milestone(VIEW, COUNTS, 50)
    assert message.text == f"Notice #2 at 50%: {SUMMARY_LINE}"
    text = _all_text(message.blocks)
    assert "*50%*" in text
    assert "*kakao*: 690 reached, 650 delivered, 280 fell back, 0 skipped, 3 failed" in text
    assert "*sms*: 290 reached, 270 delivered, 0 fell back, 0 skipped, 0 failed" in text
    assert "*no channel*: 0 reached, 0 delivered, 0 fell back, 12 skipped, 0 failed" in text


def test_when_a_notice_completes__then_text_blocks_and_metadata_carry_the_same_numbers() -> None:
    message = slack_blocks.completed(VIEW, COUNTS)
    assert message.text == (
        f"Notice #2 completed: {SUMMARY_LINE}; "
        "50 delivery reports awaited; this summary is updated as they come"
    )
    fields = {f["text"] for f in message.blocks[1]["fields"]}
    assert fields == {
        "*Reached*\n980",
        "*Delivered*\n920",
        "*Undelivered*\n10",
        "*Fell back*\n280",
        "*Skipped*\n12",
        "*Failed*\n3",
    }
    assert message.metadata is not None
    assert message.metadata["event_type"] == "alimi_notice_summary"
    payload = message.metadata["event_payload"]
    assert payload["notice_id"] == "ntc_9" and payload["seq"] == 2
    assert payload["reached"] == 980 and payload["fell_back_from"] == {"kakao": 280}


def test_when_the_parent_is_finalised__then_it_says_completed_with_the_final_counts() -> None:
    message = slack_blocks.parent_final(VIEW, COUNTS)
    fields = {f["text"] for f in message.blocks[1]["fields"]}
    assert {"*Status*\nCompleted", "*Reached*\n980", "*Delivered*\n920"} <= fields
    assert SUMMARY_LINE in message.text
    assert _button_urls(message.blocks) == ["https://status.example.kr/i/9"]


def test_when_the_summary_text_is_parsed__then_it_gives_back_the_counts() -> None:
    text = slack_blocks.completed(VIEW, COUNTS).text
    numbers = {
        label: int(n) for n, label in re.findall(r"(\d+) (reached|skipped|failed|delivered)", text)
    }
    assert numbers == {"reached": 980, "skipped": 12, "failed": 3, "delivered": 920}
    assert re.findall(r"(\d+) fell back from (\w+)", text) == [("280", "kakao")]


def test_when_nothing_has_happened__then_the_line_still_names_every_count() -> None:
    assert slack_blocks.counts_line(NoticeCounts()) == (
        "0 reached, 0 fell back, 0 skipped, 0 failed, 0 delivered"
    )


def test_when_the_title_is_long_or_has_markup__then_header_is_clipped_and_text_escaped() -> None:
    view = replace(VIEW, incident_title="<!channel> & " + "x" * 300)
    message = slack_blocks.started(view, NoticeCounts())
    assert len(message.blocks[0]["text"]["text"]) == 150
    assert "<!channel>" not in message.text and "&lt;!channel&gt; &amp; " in message.text


def test_when_there_is_no_status_url__then_there_is_no_button() -> None:
    view = replace(VIEW, status_url="")
    message = slack_blocks.started(view, NoticeCounts())
    assert _button_urls(message.blocks) == []
    assert "Status page" not in message.text


def test_when_documents_are_read__then_the_view_shows_every_person_of_the_audience() -> None:
    view = slack_blocks.notice_view(
        {"_id": "inc_1", "title": "T", "severity": "critical", "status_url": "https://s"},
        {"_id": "ntc_1", "seq": 1},
        975,  # people: 900 recipients + 40 merged + 35 skipped
    )
    assert (view.people, view.seq, view.severity) == (975, 1, "critical")


def test_when_every_report_is_in_or_the_wait_is_over__then_the_summary_says_it_is_final() -> None:
    in_ = slack_blocks.completed(VIEW, COUNTS, slack_blocks.REPORTS_IN)
    assert in_.text.endswith("; final: every delivery report is in")
    cut = slack_blocks.completed(VIEW, COUNTS, slack_blocks.REPORTS_CUT_OFF)
    assert cut.text.endswith("; final: 50 delivery reports never came (no longer awaited)")
    assert cut.metadata is not None and cut.metadata["event_payload"]["final"] is True
    awaited = slack_blocks.completed(VIEW, COUNTS)
    assert awaited.metadata is not None and awaited.metadata["event_payload"]["final"] is False
