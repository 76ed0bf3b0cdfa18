"""--format templates over the API's answers, and durations in words."""

from __future__ import annotations

import pytest

from alimi_cli.errors import CliError
from alimi_cli.output import duration, fill, time_left

ANSWER = {
    "incident_id": "inc_1",
    "notices": [{"notice_id": "ntc_1", "state": "completed"}],
    "counts": {"sent": 2},
    "done": True,
    "none": None,
}


@pytest.mark.parametrize(
    ("template", "printed"),
    [
        ("{incident_id}", "inc_1"),
        ("{notices[0][notice_id]}", "ntc_1"),
        ("{notices[0].notice_id} {notices.0.state}", "ntc_1 completed"),
        ("{counts}", '{"sent": 2}'),
        ("{done} [{none}]", "true []"),
        ("{incident_id:>7}", "  inc_1"),
    ],
)
def test_a_template_prints_the_fields_it_names(template: str, printed: str) -> None:
    assert fill(template, ANSWER) == printed


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{nope}", "the answer has no 'nope'; its fields: incident_id, notices"),
        ("{notices[3].notice_id}", "has no list index out of range"),
        ("{incident_id", "expected '}'"),
        ("{incident_id.__class__}", "has no"),
    ],
)
def test_when_a_template_names_what_is_not_there__then_the_error_says_so(
    template: str, message: str
) -> None:
    with pytest.raises(CliError, match=message):
        fill(template, ANSWER)


@pytest.mark.parametrize(
    ("seconds", "words"),
    [(0, "0s"), (59.6, "1m 00s"), (249, "4m 09s"), (7500, "2h 05m"), (273_600, "3d 4h")],
)
def test_durations_use_two_units_at_most(seconds: float, words: str) -> None:
    assert duration(seconds) == words


def test_a_passed_deadline_is_overdue() -> None:
    assert time_left(3600) == "1h 00m left"
    assert time_left(-90) == "overdue by 1m 30s"
