"""The intake API keeps to its own OpenAPI document: schemathesis against a real process.

A real intake process, on the test's MongoDB-wire server and RabbitMQ, serves
``/openapi.json``; schemathesis loads the document from there and sends every
operation requests generated from it, valid ones and deliberately invalid ones,
with the admin key. Half of the ids in paths are those of a real incident, its
notice and its status page (seeded first, by the operator key, so the admin
key may approve: four-eyes), so the requests reach past "not found".

schemathesis runs through its engine, what ``schemathesis run`` drives
(``schemathesis.pytest.from_fixture`` fails under pytest 9.2, which renamed the
``Node._nodeid`` attribute it rewrites). Two phases: coverage (every constraint
of the document broken in turn, and methods the document does not list) and
fuzzing (``MAX_EXAMPLES`` requests per operation, valid and invalid), with a
fixed seed and derandomized, so every run generates the same requests.
"""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import pytest
import schemathesis
from schemathesis.core.failures import Failure
from schemathesis.core.transport import Response
from schemathesis.engine import Status, events, from_schema
from schemathesis.hooks import HookContext
from schemathesis.openapi.checks import RejectedPositiveData

from alimi_devstack import Stack

pytestmark = pytest.mark.e2e

SEED = 20261128
MAX_EXAMPLES = 10  # per operation in the fuzzing phase (valid and invalid requests together)

CHECKS = (
    "not_a_server_error",  # no 5xx
    "status_code_conformance",  # every status is one the document lists for the operation
    "content_type_conformance",  # and comes with the media type documented for it
    "response_headers_conformance",  # with the headers documented as required
    "response_schema_conformance",  # a body that fits the documented schema
    "positive_data_acceptance",  # a request the document allows is accepted (see below)
    "negative_data_rejection",  # a request the document forbids is refused (4xx)
    "ignored_auth",  # a protected operation refuses a request without a valid key
    "unsupported_method",  # a method the document does not list: 405 ...
    "allow_header_conformance",  # ... whose Allow names the methods it does list
)
# positive_data_acceptance: the document describes what it can of every refusal (an
# empty audience, an empty file, a CSV header naming no external_id, keys of a pattern
# only); a refusal for what was done before (an Idempotency-Key the fuzzer reuses for
# another request, a cursor naming no incident) is listed in the document under its
# status (x-alimi-refusals) by its problem type, and accepted as such (_documented);
# 404 and 409 are accepted anyway. Its failures are dropped only for the operations
# below, whose requests meet rules JSON Schema cannot express, each named with them.
# Left out: use_after_free, ensure_resource_availability: they follow links between
# operations in the stateful phase, which is not run (see PHASES).
NOT_DESCRIBABLE = {
    # a mobile phone number valid in its region (libphonenumber's data); an external id twice
    ("POST", "/v1/subjects"),
    # text Korean SMS (EUC-KR) can carry; the size of the whole message once the
    # template is filled; the facts a template needs (the contact desk); each
    # jurisdiction's legal items; a discovered_at not in the future; a list that exists
    ("POST", "/v1/incidents"),
    ("POST", "/v1/incidents/{incident_id}/notices"),
}
PHASES = {
    "examples": {"enabled": False},  # the document has no examples
    "coverage": {
        "enabled": True,
        # Every constraint of the document broken in turn, each a request that must
        # be refused. Its valid boundary values are left to fuzzing: they are many
        # (about a hundred for an incident alone) and nearly all stop at the rules
        # JSON Schema does not express (see positive_data_acceptance).
        "generation": {"mode": "negative"},
        "unexpected-methods": ["PATCH", "TRACE"],  # one common, one rare: 405 and Allow
    },
    "fuzzing": {"enabled": True},
    # Sequences of calls along links: minutes, not seconds, and the document
    # declares no links (schemathesis infers some from Location headers).
    "stateful": {"enabled": False},
}

INCIDENT = {
    "title": "API 점검",
    "severity": "low",
    "discovered_at": "2026-11-28T09:00:00+09:00",
    "contact": "고객센터 1588-0000",
    "notice": {"body": "점검 중입니다."},
    "audience": {"subject_ids": ["fuzz-1"]},
}


def _post(stack: Stack, path: str, body: Any) -> Any:
    request = urllib.request.Request(
        f"{stack.intake_url}{path}",
        data=json.dumps(body).encode(),
        headers={
            "Authorization": f"Bearer {stack.api_key('operator')}",
            "Content-Type": "application/json",
        },
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as resp:
        return json.load(resp)


@pytest.fixture
def intake_api(intake: Stack) -> schemathesis.BaseSchema:
    """The live document, with the generation settings and the ids of a real incident."""
    _post(intake, "/v1/subjects", [{"external_id": "fuzz-1", "phone": "010-1234-5678"}])
    created = _post(intake, "/v1/incidents", INCIDENT)
    real = {
        "incident_id": created["incident_id"],
        "notice_id": created["notice_id"],
        "public_id": created["public_id"],
    }
    config = schemathesis.Config.from_dict(
        {
            "seed": SEED,
            # No answers kept between runs (under .schemathesis/): every run starts afresh.
            "cache": {"enabled": False},
            "workers": 1,
            "continue-on-failure": True,  # report every failure, not each operation's first
            # Hypothesis's health checks judge the data generation, not the API, and
            # too_slow trips on a loaded machine; every operation must still be tested.
            "suppress-health-check": ["all"],
            "headers": {"Authorization": f"Bearer {intake.api_key('admin')}"},
            "generation": {
                "mode": "all",  # valid and invalid requests
                "max-examples": MAX_EXAMPLES,
                "deterministic": True,
                "database": "none",
            },
            "phases": PHASES,
            "checks": {"enabled": False, **{name: {"enabled": True} for name in CHECKS}},
            "dictionaries": {name: {"values": [value]} for name, value in real.items()},
            "parameters": {
                f"path.{name}": {"dictionary": name, "probability": 0.5} for name in real
            },
        }
    )
    schema = schemathesis.openapi.from_url(f"{intake.intake_url}/openapi.json", config=config)
    schema.hook("filter_failure")(_documented)
    # schemathesis leaves out the operation that served the document unless a filter
    # names it; this one names every operation, GET /openapi.json included.
    return schema.include(path_regex="^/")


def _documented(
    ctx: HookContext, failure: Failure, case: schemathesis.Case, response: Response
) -> bool:
    """Keep a failure unless it is a refusal of a valid request the document lists for
    this operation and status, by the problem type the answer carries (or the operation
    is one of NOT_DESCRIBABLE)."""
    if not isinstance(failure, RejectedPositiveData):
        return True
    if (case.operation.method.upper(), case.operation.path) in NOT_DESCRIBABLE:
        return False
    listed = case.operation.definition.raw["responses"].get(str(response.status_code), {})
    documented = {refusal["type"] for refusal in listed.get("x-alimi-refusals", [])}
    try:
        problem = response.json()
    except ValueError:
        return True
    return not (isinstance(problem, dict) and problem.get("type") in documented)


def _failures(event: events.ScenarioFinished) -> list[str]:
    found = []
    for checks in event.recorder.checks.values():
        for check in checks:
            if check.failure_info is None:
                continue
            failure = check.failure_info.failure
            found.append(
                f"{event.label} ({event.phase.value}, {check.name}): {failure.title}\n"
                f"{failure.message}\n{check.failure_info.code_sample}"
            )
    return found


def test_the_intake_api_answers_as_its_openapi_document_says(
    intake_api: schemathesis.BaseSchema,
) -> None:
    paths = intake_api.raw_schema["paths"]
    operations = {f"{method.upper()} {path}" for path in paths for method in paths[path]}
    tested: set[str] = set()
    problems: list[str] = []
    finished = None
    for event in from_schema(intake_api).execute():
        if isinstance(event, events.ScenarioFinished):
            if event.status in (Status.SUCCESS, Status.FAILURE) and event.label:
                tested.add(event.label)
            problems.extend(_failures(event))
        elif isinstance(event, events.NonFatalError):
            problems.append(f"{event.label}: {event.info.title}: {event.info}")
        elif isinstance(event, events.FatalError):
            problems.append(f"schemathesis failed: {event.exception!r}")
        elif isinstance(event, events.EngineFinished):
            finished = event
    assert not problems, "\n\n".join(problems)
    assert finished is not None and finished.stop_reason == "completed"
    assert operations <= tested, f"not tested: {sorted(operations - tested)}"
