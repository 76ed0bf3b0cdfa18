"""Incident and update files: YAML as the API's JSON body, with errors that say where."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from alimi_cli import documents
from alimi_cli.errors import CliError, Exit

ROOT = Path(__file__).resolve().parents[2]


def test_the_example_files_load_and_keep_times_as_written() -> None:
    incident = documents.load(str(ROOT / "examples" / "incident.yaml"))
    assert incident["discovered_at"] == "-2h"
    assert incident["jurisdictions"] == ["KR-PIPA"]
    assert incident["notice"]["disclosure"]["leaked_items"] == ["이름", "휴대전화번호"]
    update = documents.load(str(ROOT / "examples" / "update.yaml"))
    assert update["status"] == "identified" and "en" in update["notice"]["translations"]


def test_the_example_incident_is_one_the_api_accepts() -> None:
    from alimi_intake.models import IncidentIn, compliance_problems, template_problems

    example = documents.load_incident(str(ROOT / "examples" / "incident.yaml"))
    incident = IncidentIn.model_validate(example)
    assert compliance_problems(incident) == [] and template_problems(incident) == []
    assert incident.discovered_at < datetime.now(UTC)  # two hours ago: the deadline is ahead


def test_a_bare_date_stays_text_for_the_api_to_refuse() -> None:
    assert documents.parse("discovered_at: 2026-11-28\n", "f.yaml") == {
        "discovered_at": "2026-11-28"
    }


SEOUL = timezone(timedelta(hours=9))
NOW = datetime(2026, 12, 5, 18, 30, 15, 500_000, tzinfo=SEOUL)


@pytest.mark.parametrize(
    ("written", "sent"),
    [
        ("now", "2026-12-05T18:30:15+09:00"),
        ("-2h", "2026-12-05T16:30:15+09:00"),
        ("-30m", "2026-12-05T18:00:15+09:00"),
        ("-1d6h", "2026-12-04T12:30:15+09:00"),
        ("-45s", "2026-12-05T18:29:30+09:00"),
        (" -2H ", "2026-12-05T16:30:15+09:00"),
        ("2026-11-28T09:00:00+09:00", "2026-11-28T09:00:00+09:00"),  # as written
        ("2026-11-28", "2026-11-28"),  # as written, for the API to refuse
    ],
)
def test_when_discovered_at_is_now_or_a_time_ago__then_that_moment_in_the_zone_is_sent(
    tmp_path: Path, written: str, sent: str
) -> None:
    (tmp_path / "i.yaml").write_text(f"title: 유출\ndiscovered_at: '{written}'\n")
    incident = documents.load_incident(str(tmp_path / "i.yaml"), now=NOW)
    assert incident == {"title": "유출", "discovered_at": sent}


def test_when_a_time_ago_is_written_bare_in_yaml__then_it_is_read_as_such(tmp_path: Path) -> None:
    (tmp_path / "i.yaml").write_text("discovered_at: -1d6h\n")
    sent = documents.load_incident(str(tmp_path / "i.yaml"), now=NOW)["discovered_at"]
    assert sent == "2026-12-04T12:30:15+09:00"


def test_when_no_zone_is_given__then_the_machines_own_is_sent(tmp_path: Path) -> None:
    (tmp_path / "i.yaml").write_text("discovered_at: now\n")
    before = datetime.now().astimezone().replace(microsecond=0)
    sent = datetime.fromisoformat(
        documents.load_incident(str(tmp_path / "i.yaml"))["discovered_at"]
    )
    assert sent.utcoffset() == before.utcoffset()
    assert before <= sent <= datetime.now().astimezone()


@pytest.mark.parametrize(
    "written", ["+2h", "now-2h", "now + 2h", "-2", "-2x", "-", "-2h30", "2h", "2 hours ago", "-h"]
)
def test_when_discovered_at_reads_as_relative_but_is_no_known_form__then_exit_2(
    written: str,
) -> None:
    with pytest.raises(CliError, match=r"i\.yaml: discovered_at: .* is not a time") as raised:
        documents.relative_time(written, "i.yaml", now=NOW)
    assert raised.value.code == Exit.USAGE
    assert "now, a time ago such as -2h, -30m or -1d6h" in raised.value.message


def test_when_the_time_ago_is_before_the_calendar__then_it_says_so() -> None:
    with pytest.raises(CliError, match="too long ago"):
        documents.relative_time("-99999999d", "i.yaml", now=NOW)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("title: a\n  severity: high\n", r"f\.yaml: not valid YAML at line 2, column 11"),
        ("notice: {body: x\n", "not valid YAML at line 2"),
        ("", "the file is empty"),
        ("# only a comment\n", "the file is empty"),
        ("- a\n- b\n", "must be a mapping .* not a list"),
        ("a: 1\n---\nb: 2\n", r"holds 2 YAML documents"),
        ("1: x\n", "a field name must be text"),
        ("a: !!binary aGVsbG8=\n", "bytes values cannot be sent"),
    ],
)
def test_when_the_yaml_is_wrong__then_the_error_says_where_and_exit_is_2(
    text: str, message: str
) -> None:
    with pytest.raises(CliError, match=message) as raised:
        documents.parse(text, "f.yaml")
    assert raised.value.code == Exit.USAGE


def test_when_the_file_is_missing_or_not_text__then_it_says_so(tmp_path: Path) -> None:
    with pytest.raises(CliError, match="no such file"):
        documents.load(str(tmp_path / "nope.yaml"))
    (tmp_path / "bin.yaml").write_bytes(b"\xff\xfe")
    with pytest.raises(CliError, match="not UTF-8 text"):
        documents.load(str(tmp_path / "bin.yaml"))
    with pytest.raises(CliError, match="is a directory"):
        documents.load(str(tmp_path))


def test_unsafe_yaml_tags_are_refused() -> None:
    with pytest.raises(CliError, match="not valid YAML"):
        documents.parse("a: !!python/object/apply:os.system ['true']\n", "f.yaml")
