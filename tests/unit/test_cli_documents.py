"""Incident and update files: YAML as the API's JSON body, with errors that say where."""

from __future__ import annotations

from pathlib import Path

import pytest

from alimi_cli import documents
from alimi_cli.errors import CliError, Exit

ROOT = Path(__file__).resolve().parents[2]


def test_the_example_files_load_and_keep_times_as_written() -> None:
    incident = documents.load(str(ROOT / "examples" / "incident.yaml"))
    assert incident["discovered_at"] == "2026-11-28T09:00:00+09:00"
    assert incident["jurisdictions"] == ["KR-PIPA"]
    assert incident["notice"]["disclosure"]["leaked_items"] == ["이름", "휴대전화번호"]
    update = documents.load(str(ROOT / "examples" / "update.yaml"))
    assert update["status"] == "identified" and "en" in update["notice"]["translations"]


def test_the_example_incident_is_one_the_api_accepts() -> None:
    from alimi_intake.models import IncidentIn, compliance_problems, template_problems

    incident = IncidentIn.model_validate(documents.load(str(ROOT / "examples" / "incident.yaml")))
    assert compliance_problems(incident) == [] and template_problems(incident) == []


def test_a_bare_date_stays_text_for_the_api_to_refuse() -> None:
    assert documents.parse("discovered_at: 2026-11-28\n", "f.yaml") == {
        "discovered_at": "2026-11-28"
    }


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
