"""Templates with #{variable} placeholders."""

import pytest

from alimi.render import (
    KNOWN_VARIABLES,
    fill,
    unknown_variables,
    variables,
)


def test_when_a_template_has_placeholders__then_variables_lists_them_in_order() -> None:
    assert variables("#{name}님, #{incident_title} 안내: #{status_url}") == [
        "name",
        "incident_title",
        "status_url",
    ]


def test_when_a_placeholder_repeats__then_it_is_listed_once() -> None:
    assert variables("#{name} #{contact} #{name}") == ["name", "contact"]


@pytest.mark.parametrize(
    "template", ["no placeholders", "{name}", "#name", "#{}", "#{1abc}", "#{na me}", "${name}"]
)
def test_when_text_only_looks_like_a_placeholder__then_it_is_not_a_variable(template: str) -> None:
    assert variables(template) == []


def test_when_a_placeholder_has_underscores_and_digits__then_it_is_a_variable() -> None:
    assert variables("#{_a1} #{B_2}") == ["_a1", "B_2"]


def test_when_every_variable_is_known__then_none_is_unknown() -> None:
    template = " ".join(f"#{{{v}}}" for v in sorted(KNOWN_VARIABLES))
    assert unknown_variables(template) == []


def test_when_variables_are_unknown__then_each_is_listed_once_in_order() -> None:
    assert unknown_variables("#{ssn} #{name} #{card} #{ssn}") == ["ssn", "card"]


def test_when_a_variable_differs_only_in_case__then_it_is_unknown() -> None:
    assert unknown_variables("#{Name}") == ["Name"]


def test_when_filled__then_each_known_placeholder_is_replaced_everywhere() -> None:
    assert fill("#{name}님 #{name}님", {"name": "김민수"}) == "김민수님 김민수님"


def test_when_filled__then_placeholders_without_a_value_are_left_as_they_are() -> None:
    assert fill("#{name}: #{incident_title}", {"incident_title": "유출"}) == "#{name}: 유출"


def test_when_a_value_contains_a_placeholder__then_it_is_not_filled_again() -> None:
    assert fill("#{contact}", {"contact": "#{name}", "name": "x"}) == "#{name}"


def test_when_a_value_contains_regex_escapes__then_it_is_inserted_literally() -> None:
    assert fill("#{contact}", {"contact": r"\1 \g<0> $1"}) == r"\1 \g<0> $1"


def test_when_a_value_is_empty__then_the_placeholder_is_removed() -> None:
    assert fill("[#{name}]", {"name": ""}) == "[]"
