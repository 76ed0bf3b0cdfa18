"""API keys on every route, taken from the route table so none can be forgotten;
and Idempotency-Key on POST."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr

from alimi import api_keys, ids
from alimi.store import Store
from alimi_intake import views
from alimi_intake.access import PUBLIC, access_of, check_routes
from alimi_intake.app import init_app
from alimi_intake.settings import IntakeSettings

PROBLEM = "application/problem+json"


@pytest.fixture
def app(mongo_url: str, amqp_url: str, namespace: str) -> web.Application:
    settings = IntakeSettings(
        namespace=namespace,
        amqp_url=SecretStr(amqp_url),
        mongo_url=SecretStr(mongo_url),
        mongo_db=namespace,
    )
    return init_app(settings)


@pytest.fixture
async def client(app: web.Application, store: Store) -> AsyncIterator[TestClient[Any, Any]]:
    async with TestClient(TestServer(app)) as c:
        yield c


def _protected(app: web.Application) -> list[tuple[str, str, str]]:
    """(method, path with dummy parameters, scope) of every protected route."""
    found = []
    for route in app.router.routes():
        scope = access_of(route.handler)
        if route.method == "HEAD" or scope == PUBLIC:
            continue
        path = re.sub(r"\{[^}]+\}", "x1", route.resource.canonical if route.resource else "")
        found.append((route.method, path, str(scope)))
    return found


async def _token(store: Store, *scopes: str) -> str:
    token, _ = await api_keys.create(store, name="t", scopes=list(scopes))
    return token


def test_every_route_declares_who_may_call_it(app: web.Application) -> None:
    check_routes(app)
    assert len(_protected(app)) >= 8


def test_when_a_route_declares_no_access__then_the_app_refuses_to_start() -> None:
    app = web.Application()

    async def forgotten(_: web.Request) -> web.Response:
        return web.Response()

    app.router.add_get("/v1/forgotten", forgotten)
    with pytest.raises(RuntimeError, match="GET /v1/forgotten declares no access"):
        check_routes(app)


async def test_when_no_key_or_a_bad_key_is_sent__then_every_protected_route_says_401(
    app: web.Application, client: TestClient[Any, Any], store: Store
) -> None:
    revoked = await _token(store, "admin")
    await api_keys.revoke(store, revoked.split(".")[0].removeprefix("ak_"))
    for method, path, _scope in _protected(app):
        for headers in (
            {},
            {"Authorization": "Bearer ak_nope.not-a-real-secret-000"},
            {"Authorization": f"Bearer {revoked}"},
            {"Authorization": "Basic dXNlcjpwYXNz"},
        ):
            resp = await client.request(method, path, headers=headers)
            assert resp.status == 401, (method, path, headers, await resp.text())
            assert resp.content_type == PROBLEM
            assert resp.headers["WWW-Authenticate"].startswith("Bearer")


async def test_when_a_key_lacks_the_scope__then_every_protected_route_says_403(
    app: web.Application, client: TestClient[Any, Any], store: Store
) -> None:
    for method, path, scope in _protected(app):
        other = next(s for s in api_keys.SCOPES if s not in (scope, api_keys.ADMIN))
        token = await _token(store, other)
        resp = await client.request(method, path, headers={"Authorization": f"Bearer {token}"})
        assert resp.status == 403, (method, path, scope, await resp.text())
        assert resp.content_type == PROBLEM
        assert scope in (await resp.json())["detail"]


async def test_when_a_key_has_the_scope__then_it_gets_past_the_door(
    app: web.Application, client: TestClient[Any, Any], store: Store
) -> None:
    for method, path, scope in _protected(app):
        token = await _token(store, scope)
        resp = await client.request(method, path, headers={"Authorization": f"Bearer {token}"})
        assert resp.status not in (401, 403), (method, path, await resp.text())
        assert resp.status < 500, (method, path, await resp.text())


SUBJECTS = [{"external_id": "c1", "name": "김", "phone": "010-1234-5678"}]


async def test_when_a_post_is_repeated_with_its_idempotency_key__then_the_first_answer_returns(
    client: TestClient[Any, Any], store: Store
) -> None:
    headers = {
        "Authorization": f"Bearer {await _token(store, 'subjects:write')}",
        "Idempotency-Key": "import-2026-11-29-1",
    }
    first = await client.post("/v1/subjects", json=SUBJECTS, headers=headers)
    assert first.status == 200
    second = await client.post("/v1/subjects", json=SUBJECTS, headers=headers)
    assert second.status == 200
    assert await second.json() == await first.json()
    assert second.headers["Idempotent-Replayed"] == "true"
    assert await store.audit.count_documents({"action": "subjects.imported"}) == 1

    changed = await client.post(
        "/v1/subjects", json=[{**SUBJECTS[0], "name": "이"}], headers=headers
    )
    assert changed.status == 422 and changed.content_type == PROBLEM
    assert (await changed.json())["errors"][0]["field"] == "Idempotency-Key"

    bad = await client.post(
        "/v1/subjects", json=SUBJECTS, headers={**headers, "Idempotency-Key": "has space"}
    )
    assert bad.status == 400 and bad.content_type == PROBLEM
    record = await store.idempotency.find_one({})
    assert record is not None and record["expires_at"] > record["created_at"]


async def test_when_the_first_request_failed__then_the_same_key_may_try_again(
    client: TestClient[Any, Any], store: Store
) -> None:
    headers = {
        "Authorization": f"Bearer {await _token(store, 'subjects:write')}",
        "Idempotency-Key": "k-1",
    }
    refused = await client.post("/v1/subjects", json=[{"external_id": ""}], headers=headers)
    assert refused.status == 422
    assert await store.idempotency.count_documents({}) == 0
    retried = await client.post("/v1/subjects", json=SUBJECTS, headers=headers)
    assert retried.status == 200


async def test_when_an_admin_creates_a_key__then_it_is_shown_once_and_works(
    client: TestClient[Any, Any], store: Store
) -> None:
    admin = {"Authorization": f"Bearer {await _token(store, 'admin')}"}
    resp = await client.post(
        "/v1/keys", json={"name": "on-call", "scopes": ["incidents:read"]}, headers=admin
    )
    assert resp.status == 201, await resp.text()
    created = await resp.json()
    stored = await store.api_keys.find_one({"_id": created["key_id"]})
    assert stored is not None and created["api_key"].split(".")[1] not in str(stored)
    bad = await client.post("/v1/keys", json={"name": "x", "scopes": ["root"]}, headers=admin)
    assert bad.status == 422
    gone = await client.delete(f"/v1/keys/{created['key_id']}", headers=admin)
    assert gone.status == 204
    after = await client.get(
        "/v1/incidents/inc_1", headers={"Authorization": f"Bearer {created['api_key']}"}
    )
    assert after.status == 401
    assert [a["action"] async for a in store.audit.find({}).sort("at", 1)] == [
        "key.created",
        "key.revoked",
    ]


async def test_the_openapi_document_is_public_and_covers_every_route(
    app: web.Application, client: TestClient[Any, Any]
) -> None:
    resp = await client.get("/openapi.json")
    assert resp.status == 200
    doc = await resp.json()
    assert doc["openapi"] == "3.1.0"
    documented = {(method.upper(), path) for path, ops in doc["paths"].items() for method in ops}
    routed = {
        (r.method, r.resource.canonical)
        for r in app.router.routes()
        if r.method != "HEAD" and r.resource is not None
    }
    assert documented == routed
    create = doc["paths"]["/v1/incidents"]["post"]
    assert create["x-alimi-scope"] == "incidents:write"
    assert {"201", "400", "401", "403", "413", "422"} <= set(create["responses"])
    incident = doc["components"]["schemas"]["IncidentIn"]
    assert incident["additionalProperties"] is False  # the same model that validates requests
    assert "notice" in incident["required"]


async def test_the_ids_the_api_hands_out_fit_the_documented_path_parameters(
    client: TestClient[Any, Any], store: Store
) -> None:
    doc = await (await client.get("/openapi.json")).json()
    patterns = {
        parameter["name"]: parameter["schema"]["pattern"]
        for operations in doc["paths"].values()
        for operation in operations.values()
        for parameter in operation.get("parameters", [])
        if parameter["in"] == "path"
    }
    _, key = await api_keys.create(store, name="t", scopes=["admin"])
    handed_out = {
        "incident_id": ids.new_id("inc"),
        "notice_id": ids.new_id("ntc"),
        "key_id": key.key_id,
        "public_id": ids.public_id(),
    }
    for name, value in handed_out.items():
        assert re.search(patterns[name], value), (name, value, patterns[name])


async def test_the_documented_subject_media_types_are_those_the_view_reads(
    client: TestClient[Any, Any],
) -> None:
    doc = await (await client.get("/openapi.json")).json()
    content = doc["paths"]["/v1/subjects"]["post"]["requestBody"]["content"]
    assert set(content) == {"application/json", *views.NDJSON_TYPES}


async def test_the_refusals_of_well_formed_requests_are_listed_by_the_problem_type_they_carry(
    client: TestClient[Any, Any], store: Store
) -> None:
    doc = await (await client.get("/openapi.json")).json()

    def listed(method: str, path: str) -> set[str]:
        answer = doc["paths"][path][method]["responses"].get("422", {})
        refusals = answer.get("x-alimi-refusals", [])
        return {refusal["type"] for refusal in refusals}

    headers = {"Authorization": f"Bearer {await _token(store, 'admin')}"}
    unknown = await client.get(
        "/v1/incidents", params={"cursor": "inc_ffffffffffffffffffff"}, headers=headers
    )
    assert unknown.status == 422
    assert (await unknown.json())["type"] in listed("get", "/v1/incidents")

    reused = {**headers, "Idempotency-Key": "same-key"}
    first = await client.post("/v1/keys", json={"name": "a", "scopes": ["admin"]}, headers=reused)
    assert first.status == 201, await first.text()
    again = await client.post("/v1/keys", json={"name": "b", "scopes": ["admin"]}, headers=reused)
    assert again.status == 422
    problem_type = (await again.json())["type"]
    assert problem_type != "about:blank"
    assert all(problem_type in listed("post", path) for path in ("/v1/keys", "/v1/incidents"))
    assert not listed("get", "/v1/imports/{import_id}")  # only what can happen is listed


@pytest.mark.parametrize(
    ("path", "media", "body", "allowed"),
    [
        ("/v1/subjects/import", "text/csv", "external_id,phone\nc1,010-1234-5678\n", True),
        ("/v1/subjects/import", "text/csv", '\ufeff" Phone ",EXTERNAL_ID \r\n,c1', True),
        ("/v1/subjects/import", "text/csv", 'external_id, "phone"\nc1,', False),  # " after space
        ("/v1/subjects/import", "text/csv", "", False),  # no header, no row: 422
        ("/v1/subjects/import", "text/csv", "external_id\n \n", False),  # a header alone
        ("/v1/subjects/import", "text/csv", "name,phone\nx,y\n", False),  # no external_id
        ("/v1/subjects/import", "text/csv", "external_id,email\nc1,x\n", False),  # unknown
        ("/v1/subjects/import", "text/csv", "external_id,name,Name\nc1,a,b\n", False),  # twice
        ("/v1/subjects/import", "application/x-ndjson", '{"external_id": "c1"}', True),
        ("/v1/subjects/import", "application/x-ndjson", "\n \n", False),
        ("/v1/lists", "text/csv", "email,External_Id\nx,c1\n", True),
        ("/v1/lists", "text/csv", "email\nx\n", False),
    ],
)
async def test_the_documented_files_are_those_the_imports_take(
    client: TestClient[Any, Any], store: Store, path: str, media: str, body: str, allowed: bool
) -> None:
    doc = await (await client.get("/openapi.json")).json()
    pattern = doc["paths"][path]["post"]["requestBody"]["content"][media]["schema"]["pattern"]
    assert (re.search(pattern, body) is not None) == allowed
    headers = {"Authorization": f"Bearer {await _token(store, 'admin')}", "Content-Type": media}
    resp = await client.post(path, data=body.encode(), headers=headers)
    assert (resp.status < 300) == allowed, await resp.text()


async def test_an_empty_audience_is_refused_by_the_document_as_by_the_api(
    client: TestClient[Any, Any],
) -> None:
    doc = await (await client.get("/openapi.json")).json()
    audience = doc["components"]["schemas"]["AudienceSpec"]
    assert {"required": ["subject_ids"], "properties": {"subject_ids": {"minItems": 1}}} in (
        audience["anyOf"]
    )
    attributes = doc["components"]["schemas"]["SubjectIn"]["properties"]["attributes"]
    assert attributes["additionalProperties"] is False  # only keys of the pattern
