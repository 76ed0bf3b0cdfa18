"""Problem documents shown as a person reads them, and the exit code of each error."""

from __future__ import annotations

from alimi_cli.errors import ApiError, Exit, format_problem


def test_when_a_problem_names_fields__then_each_is_a_line_under_the_title() -> None:
    problem = {
        "type": "about:blank",
        "title": "Invalid subjects",
        "status": 422,
        "detail": "2 of 3 rows are invalid; nothing was imported",
        "errors": [
            {"field": "[0].phone", "message": "not a valid phone number"},
            {"field": "[2].locale", "message": "String should match pattern"},
        ],
    }
    assert format_problem(422, problem) == [
        "error: Invalid subjects (HTTP 422)",
        "  2 of 3 rows are invalid; nothing was imported",
        "  - [0].phone: not a valid phone number",
        "  - [2].locale: String should match pattern",
    ]


def test_when_the_detail_only_repeats_the_fields__then_it_is_left_out() -> None:
    problem = {
        "title": "Invalid request",
        "detail": "invalid fields: notice.body, severity",
        "errors": [
            {"field": "notice.body", "message": "Field required"},
            {"field": "severity", "message": "Input should be 'low', 'medium'"},
        ],
    }
    lines = format_problem(422, problem)
    assert lines[0] == "error: Invalid request (HTTP 422)"
    assert "invalid fields" not in "\n".join(lines)
    assert lines[1:] == [
        "  - notice.body: Field required",
        "  - severity: Input should be 'low', 'medium'",
    ]


def test_when_an_error_names_a_row__then_the_row_is_shown() -> None:
    problem = {
        "title": "Invalid CSV header",
        "errors": [{"row": 1, "field": "header", "message": "x"}],
    }
    assert format_problem(422, problem)[-1] == "  - row 1 header: x"


def test_when_the_body_is_not_a_problem__then_the_status_says_what_it_was() -> None:
    assert format_problem(502, {}) == ["error: Bad Gateway (HTTP 502)"]
    assert format_problem(418, {"errors": "not a list"}) == ["error: Error (HTTP 418)"]


def test_a_4xx_is_refused_and_a_5xx_unavailable() -> None:
    assert ApiError(409, {"title": "Conflict"}).code == Exit.REFUSED == 1
    assert ApiError(503, {"title": "Service Unavailable"}).code == Exit.UNAVAILABLE == 3


def test_when_the_error_has_a_hint__then_it_is_the_last_line() -> None:
    error = ApiError(401, {"title": "Unauthorized"}, hint="the request used the key ak_x.…")
    assert error.lines()[-1] == "  hint: the request used the key ak_x.…"
