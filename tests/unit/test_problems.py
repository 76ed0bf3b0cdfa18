"""RFC 9457 problem details: the documents, the validation mapping, the middleware."""

import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pydantic import BaseModel, Field, ValidationError, model_validator

from alimi import problems
from alimi.problems import ProblemError, from_validation_error, read_json, response


class Item(BaseModel):
    name: str = Field(min_length=1)
    count: int


class Order(BaseModel):
    items: list[Item]
    note: str = ""

    @model_validator(mode="after")
    def _has_note_for_many(self) -> "Order":
        if len(self.items) > 2 and not self.note:
            raise ValueError("a note is needed for more than two items")
        return self


def validation_error(data: Any, model: type[BaseModel] = Order) -> ValidationError:
    with pytest.raises(ValidationError) as caught:
        model.model_validate(data)
    return caught.value


def document(resp: web.Response) -> dict[str, Any]:
    assert resp.text is not None
    return json.loads(resp.text)


def test_when_fields_are_invalid__then_each_is_named_in_errors_and_detail() -> None:
    exc = validation_error({"items": [{"name": "", "count": "x"}]})
    problem = from_validation_error(exc)
    assert problem.status == 422
    assert problem.title == "Invalid request"
    assert [e["field"] for e in problem.errors] == ["items.0.name", "items.0.count"]
    assert all(e["message"] for e in problem.errors)
    assert problem.detail == "invalid fields: items.0.name, items.0.count"


def test_when_a_prefix_is_given__then_every_field_starts_with_it() -> None:
    exc = validation_error({"items": [{"name": "", "count": 1}], "note": 5})
    problem = from_validation_error(exc, prefix="orders.3")
    assert [e["field"] for e in problem.errors] == ["orders.3.items.0.name", "orders.3.note"]
    assert problem.detail == "invalid fields: orders.3.items.0.name, orders.3.note"


def test_when_the_error_is_about_the_whole_body__then_the_field_is_body() -> None:
    exc = validation_error({"items": [{"name": "a", "count": 1}] * 3})
    [error] = from_validation_error(exc).errors
    assert error["field"] == "body"
    assert "a note is needed" in error["message"]


def test_when_the_whole_body_is_wrong_and_a_prefix_is_given__then_the_field_is_the_prefix() -> None:
    exc = validation_error({"items": [{"name": "a", "count": 1}] * 3})
    assert from_validation_error(exc, prefix="orders.0").errors[0]["field"] == "orders.0"


def test_when_a_response_is_made__then_it_is_problem_json_with_the_rfc_9457_members() -> None:
    resp = response(409, "Conflict", "the notice is already approved")
    assert resp.status == 409
    assert resp.content_type == "application/problem+json"
    assert document(resp) == {
        "type": "about:blank",
        "title": "Conflict",
        "status": 409,
        "detail": "the notice is already approved",
    }


def test_when_there_is_no_detail_or_errors__then_those_members_are_left_out() -> None:
    assert document(response(404, "Not Found")) == {
        "type": "about:blank",
        "title": "Not Found",
        "status": 404,
    }


def test_when_errors_are_given__then_they_are_an_extension_member() -> None:
    errors = [{"field": "phone", "message": "not a phone number"}]
    assert document(response(422, "Invalid request", errors=errors))["errors"] == errors


def test_when_the_text_is_not_ascii__then_it_is_sent_as_utf8_text() -> None:
    resp = response(400, "잘못된 요청")
    assert resp.text is not None and "잘못된 요청" in resp.text
    assert resp.charset == "utf-8"


def test_when_a_problem_error_has_only_a_title__then_its_message_is_the_title() -> None:
    exc = ProblemError(404, "Not Found")
    assert (str(exc), exc.detail, exc.errors) == ("Not Found", "", [])


async def boom(_request: web.Request) -> web.Response:
    raise RuntimeError("database password is hunter2")


async def conflict(_request: web.Request) -> web.Response:
    errors = [{"field": "state", "message": "is approved"}]
    raise ProblemError(409, "Conflict", "the notice is already approved", errors=errors)


async def bad_request(_request: web.Request) -> web.Response:
    raise web.HTTPBadRequest(text="the query is too long")


async def moved(_request: web.Request) -> web.Response:
    raise web.HTTPFound("/ok")


async def ok(_request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


async def echo(request: web.Request) -> web.Response:
    return web.json_response({"got": await read_json(request)})


async def validate(request: web.Request) -> web.Response:
    try:
        Order.model_validate(await read_json(request))
    except ValidationError as exc:
        raise from_validation_error(exc, prefix="order") from None
    return web.json_response({"ok": True})


@pytest.fixture
async def client() -> AsyncIterator[TestClient[web.Request, web.Application]]:
    app = web.Application(middlewares=[problems.middleware])
    app.router.add_get("/boom", boom)
    app.router.add_get("/conflict", conflict)
    app.router.add_get("/bad", bad_request)
    app.router.add_get("/moved", moved)
    app.router.add_get("/ok", ok)
    app.router.add_post("/echo", echo)
    app.router.add_post("/orders", validate)
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


async def test_when_a_handler_fails_unexpectedly__then_a_500_problem_without_details_comes_back(
    client: TestClient[web.Request, web.Application],
) -> None:
    resp = await client.get("/boom")
    assert resp.status == 500
    assert resp.content_type == "application/problem+json"
    text = await resp.text()
    assert json.loads(text) == {
        "type": "about:blank",
        "title": "Internal Server Error",
        "status": 500,
        "detail": "the error was logged",
    }
    for leak in ("Traceback", "RuntimeError", "hunter2", "boom"):
        assert leak not in text


async def test_when_a_handler_fails_unexpectedly__then_the_exception_is_logged_with_the_path(
    client: TestClient[web.Request, web.Application], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="alimi.http"):
        await client.get("/boom")
    [rec] = [r for r in caplog.records if r.name == "alimi.http"]
    assert rec.getMessage() == "unhandled error"
    assert rec.exc_info is not None and rec.exc_info[0] is RuntimeError
    assert (rec.__dict__["path"], rec.__dict__["method"]) == ("/boom", "GET")


async def test_when_a_handler_raises_a_problem_error__then_its_status_and_members_come_back(
    client: TestClient[web.Request, web.Application],
) -> None:
    resp = await client.get("/conflict")
    assert resp.status == 409
    assert resp.content_type == "application/problem+json"
    assert await resp.json(content_type=None) == {
        "type": "about:blank",
        "title": "Conflict",
        "status": 409,
        "detail": "the notice is already approved",
        "errors": [{"field": "state", "message": "is approved"}],
    }


async def test_when_a_handler_raises_an_http_error__then_it_becomes_a_problem(
    client: TestClient[web.Request, web.Application],
) -> None:
    resp = await client.get("/bad")
    assert resp.status == 400
    assert resp.content_type == "application/problem+json"
    body = await resp.json(content_type=None)
    assert (body["title"], body["detail"]) == ("Bad Request", "the query is too long")


async def test_when_no_route_matches__then_a_404_problem_comes_back(
    client: TestClient[web.Request, web.Application],
) -> None:
    resp = await client.get("/nowhere")
    assert resp.status == 404
    assert resp.content_type == "application/problem+json"
    assert (await resp.json(content_type=None))["title"] == "Not Found"


async def test_when_the_method_is_not_allowed__then_a_405_problem_names_the_allowed_ones(
    client: TestClient[web.Request, web.Application],
) -> None:
    resp = await client.delete("/ok")
    assert resp.status == 405
    assert resp.content_type == "application/problem+json"
    assert "GET" in resp.headers["Allow"].split(",")  # RFC 9110: a 405 carries Allow


async def test_when_a_handler_redirects__then_the_redirect_passes_through(
    client: TestClient[web.Request, web.Application],
) -> None:
    resp = await client.get("/moved", allow_redirects=False)
    assert resp.status == 302
    assert resp.headers["Location"] == "/ok"


async def test_when_a_handler_succeeds__then_its_response_is_untouched(
    client: TestClient[web.Request, web.Application],
) -> None:
    resp = await client.get("/ok")
    assert resp.status == 200
    assert resp.content_type == "application/json"
    assert await resp.json() == {"ok": True}


async def test_when_the_body_is_json__then_read_json_returns_it(
    client: TestClient[web.Request, web.Application],
) -> None:
    resp = await client.post("/echo", json={"a": [1, "가"]})
    assert await resp.json() == {"got": {"a": [1, "가"]}}


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (b"", "the request body is empty"),
        (b"{not json", "body is not valid JSON"),
        (b"\xff\xfe\xfa", "body is not valid JSON"),
    ],
)
async def test_when_the_body_is_not_json__then_a_400_problem_says_why(
    client: TestClient[web.Request, web.Application], body: bytes, detail: str
) -> None:
    resp = await client.post("/echo", data=body, headers={"Content-Type": "application/json"})
    assert resp.status == 400
    problem = await resp.json(content_type=None)
    assert problem["title"] == "Malformed JSON"
    assert problem["detail"].startswith(detail)


async def test_when_a_body_fails_validation__then_a_422_problem_names_each_field(
    client: TestClient[web.Request, web.Application],
) -> None:
    resp = await client.post("/orders", json={"items": [{"name": "", "count": 1}], "note": 1})
    assert resp.status == 422
    problem = await resp.json(content_type=None)
    assert [e["field"] for e in problem["errors"]] == ["order.items.0.name", "order.note"]
    assert problem["detail"] == "invalid fields: order.items.0.name, order.note"


def nested(depth: int, inner: str = "1") -> bytes:
    return ("[" * depth + inner + "]" * depth).encode()


def test_when_json_nests_ten_thousand_arrays__then_loads_refuses_it_before_parsing() -> None:
    with pytest.raises(problems.TooDeep) as caught:
        problems.loads(nested(10_000))
    assert str(caught.value) == "arrays and objects are nested more than 32 levels deep"


def test_the_depth_limit_counts_arrays_and_objects_alike() -> None:
    assert problems.loads(nested(problems.MAX_JSON_DEPTH)) is not None
    with pytest.raises(problems.TooDeep):
        problems.loads(nested(problems.MAX_JSON_DEPTH + 1))
    objects = '{"a":' * 33 + "1" + "}" * 33
    with pytest.raises(problems.TooDeep):
        problems.loads(objects.encode())


@pytest.mark.parametrize(
    "text",
    [
        '["' + "[" * 100 + '"]',  # brackets inside a string are text
        '["\\"' + "{" * 100 + '"]',  # after an escaped quote, still inside the string
        "[" + ",".join(["[]"] * 1000) + "]",  # many arrays, none deep
    ],
)
def test_brackets_that_do_not_nest_are_not_counted(text: str) -> None:
    assert problems.loads(text.encode()) == json.loads(text)


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be", "utf-32"])
def test_json_in_utf_16_or_32_is_measured_as_what_it_says(encoding: str) -> None:
    with pytest.raises(problems.TooDeep):
        problems.loads(nested(1000).decode().encode(encoding))
    # "∀" is 0x22 0x00 in UTF-16: read as bytes it looks like a quote hiding the brackets.
    hidden = '["∀", ' + "[" * 1000 + "]" * 1000 + ', "x"]'
    with pytest.raises(problems.TooDeep):
        problems.loads(hidden.encode(encoding))


async def test_when_the_body_nests_too_deeply__then_read_json_answers_400_naming_the_limit(
    client: TestClient[web.Request, web.Application],
) -> None:
    resp = await client.post(
        "/echo", data=nested(10_000), headers={"Content-Type": "application/json"}
    )
    assert resp.status == 400
    assert resp.content_type == "application/problem+json"
    problem = await resp.json(content_type=None)
    assert problem["title"] == "JSON nested too deeply"
    assert problem["errors"] == [
        {"field": "body", "message": "arrays and objects are nested more than 32 levels deep"}
    ]


@pytest.mark.parametrize(
    "content_type",
    [None, "text/plain", "application/x-www-form-urlencoded", "application/json; charset=latin-1"],
)
async def test_when_a_json_body_is_sent_as_another_type__then_415_names_the_header(
    client: TestClient[web.Request, web.Application], content_type: str | None
) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    resp = await client.post(
        "/echo", data=b'{"a": 1}', headers=headers, skip_auto_headers=["Content-Type"]
    )
    assert resp.status == 415
    assert resp.content_type == "application/problem+json"
    problem = await resp.json(content_type=None)
    assert problem["errors"] == [{"field": "Content-Type", "message": "expected application/json"}]
    assert problem["detail"].endswith("; send application/json")


async def test_when_the_json_type_carries_utf_8__then_it_is_read(
    client: TestClient[web.Request, web.Application],
) -> None:
    resp = await client.post(
        "/echo", data=b'{"a": 1}', headers={"Content-Type": "application/json; charset=UTF-8"}
    )
    assert await resp.json() == {"got": {"a": 1}}


async def test_when_a_problem_has_a_type_of_its_own__then_the_answer_carries_it() -> None:
    async def reused(_request: web.Request) -> web.Response:
        raise ProblemError(422, "Reused", type_uri="urn:example:reused")

    app = web.Application(middlewares=[problems.middleware])
    app.router.add_get("/reused", reused)
    async with TestClient(TestServer(app)) as test_client:
        resp = await test_client.get("/reused")
        assert (await resp.json(content_type=None))["type"] == "urn:example:reused"
    assert document(response(400, "Bad"))["type"] == "about:blank"
