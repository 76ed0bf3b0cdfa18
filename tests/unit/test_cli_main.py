"""The ``alimi`` commands against a fake API: what they print and the codes they exit with."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from alimi_cli import options
from alimi_cli import watch as watch_module
from alimi_cli.client import Api
from alimi_cli.main import cli, main

Handler = Callable[[httpx.Request], httpx.Response]
PROBLEM = {"Content-Type": "application/problem+json"}


@pytest.fixture(autouse=True)
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("ALIMI_URL", "ALIMI_API_KEY", "ALIMI_PROFILE", "ALIMI_CONFIG", "COLUMNS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("ALIMI_API_KEY", "ak_test.test-secret-000000")
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Handler]]:
    """Set ``api[0]`` to the function that answers the CLI's requests."""
    handlers: list[Handler] = []

    def fake(self: options.Session) -> Api:
        return Api(
            self.settings,
            transport=httpx.MockTransport(lambda r: handlers[0](r)),
            sleep=lambda _: None,
        )

    monkeypatch.setattr(options.Session, "api", fake)
    yield handlers


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _commands(group: Any, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    yield prefix
    for name, command in getattr(group, "commands", {}).items():
        yield from _commands(command, (*prefix, name))


def test_every_command_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    commands = list(_commands(cli))
    assert ("watch",) in commands and ("dead", "list") in commands
    for command in commands:
        code, out, _ = run(capsys, *command, "--help")
        assert code == 0 and "Usage: alimi" in out, command


def test_when_the_usage_is_wrong__then_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "incident", "frobnicate")
    assert code == 2 and "No such command 'frobnicate'" in err
    code, _, err = run(capsys, "watch")
    assert code == 2 and "Missing argument 'INCIDENT_ID'" in err


def test_when_no_key_is_set__then_exit_2_naming_how_to_set_it(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, api: list[Handler]
) -> None:
    monkeypatch.delenv("ALIMI_API_KEY")
    api.append(lambda r: httpx.Response(200, json={}))
    code, _, err = run(capsys, "incident", "show", "inc_1")
    assert code == 2 and "no API key: set ALIMI_API_KEY" in err


def test_when_the_api_refuses__then_the_problem_is_shown_readably_and_exit_1(
    capsys: pytest.CaptureFixture[str], api: list[Handler], tmp_path: Path
) -> None:
    problem = {
        "type": "about:blank",
        "title": "Notice misses legally required items",
        "status": 422,
        "detail": "contact: KR-PIPA requires the desk to contact",
        "errors": [{"field": "contact", "message": "KR-PIPA requires the desk to contact"}],
    }
    api.append(lambda r: httpx.Response(422, json=problem, headers=PROBLEM))
    (tmp_path / "i.yaml").write_text("title: t\n")
    code, out, err = run(capsys, "incident", "create", "-f", "i.yaml")
    assert (code, out) == (1, "")
    assert err.splitlines() == [
        "error: Notice misses legally required items (HTTP 422)",
        "  - contact: KR-PIPA requires the desk to contact",
    ]
    code, out, err = run(capsys, "incident", "create", "-f", "i.yaml", "-o", "json")
    assert (code, out) == (1, "")
    assert json.loads(err) == problem


def test_when_the_file_is_not_yaml__then_exit_2_before_any_request(
    capsys: pytest.CaptureFixture[str], api: list[Handler], tmp_path: Path
) -> None:
    api.append(lambda r: pytest.fail("no request should be made"))
    (tmp_path / "i.yaml").write_text("title: [unclosed\n")
    code, _, err = run(capsys, "incident", "create", "-f", "i.yaml")
    assert code == 2 and err.startswith("error: i.yaml: not valid YAML at line 2")


def test_when_discovered_at_is_a_time_ago__then_create_sends_that_moment_with_a_zone(
    capsys: pytest.CaptureFixture[str], api: list[Handler], tmp_path: Path
) -> None:
    sent: list[Any] = []

    def handle(request: httpx.Request) -> httpx.Response:
        sent.append(json.loads(request.content))
        return httpx.Response(201, json={"incident_id": "inc_1", "notice_id": "ntc_1"})

    api.append(handle)
    (tmp_path / "i.yaml").write_text("title: 유출\ndiscovered_at: -2h\n")
    before = datetime.now().astimezone().replace(microsecond=0) - timedelta(hours=2)
    code, _, err = run(capsys, "incident", "create", "-f", "i.yaml", "--format", "{notice_id}")
    assert code == 0, err
    [body] = sent
    at = datetime.fromisoformat(body["discovered_at"])
    assert at.utcoffset() == before.utcoffset()
    assert before <= at <= datetime.now().astimezone() - timedelta(hours=2)


def test_when_discovered_at_reads_relative_but_is_not_a_known_form__then_exit_2_unsent(
    capsys: pytest.CaptureFixture[str], api: list[Handler], tmp_path: Path
) -> None:
    api.append(lambda r: pytest.fail("no request should be made"))
    (tmp_path / "i.yaml").write_text("title: 유출\ndiscovered_at: +2h\n")
    code, _, err = run(capsys, "incident", "create", "-f", "i.yaml")
    assert code == 2
    assert err.startswith("error: i.yaml: discovered_at: '+2h' is not a time alimi understands")


def test_create_sends_the_yaml_as_json_and_format_prints_one_field(
    capsys: pytest.CaptureFixture[str], api: list[Handler], tmp_path: Path
) -> None:
    sent: list[Any] = []

    def handle(request: httpx.Request) -> httpx.Response:
        sent.append(json.loads(request.content))
        created = {
            "incident_id": "inc_1",
            "notice_id": "ntc_1",
            "public_id": "p",
            "status_url": "http://x/s/p",
        }
        return httpx.Response(201, json=created)

    api.append(handle)
    (tmp_path / "i.yaml").write_text("title: 유출\ndiscovered_at: 2026-11-28T09:00:00+09:00\n")
    code, out, _ = run(capsys, "incident", "create", "-f", "i.yaml", "--format", "{notice_id}")
    assert (code, out) == (0, "ntc_1\n")
    assert sent == [{"title": "유출", "discovered_at": "2026-11-28T09:00:00+09:00"}]
    code, out, _ = run(capsys, "incident", "create", "-f", "i.yaml")
    assert "Incident inc_1 created." in out and "alimi notice approve ntc_1" in out


def test_the_common_options_work_before_and_after_the_command(
    capsys: pytest.CaptureFixture[str], api: list[Handler]
) -> None:
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"notice_id": "ntc_1", "incident_id": "i", "state": "x"})

    api.append(handle)
    code, out, _ = run(
        capsys, "--url", "http://a.test", "-o", "json", "notice", "halt", "ntc_1", "--url",
        "http://b.test", "--key", "ak_flag.flag-secret-00000",
    )  # fmt: skip
    assert code == 0 and json.loads(out)["state"] == "x"
    assert str(seen[0].url) == "http://b.test/v1/notices/ntc_1/halt"
    assert seen[0].headers["Authorization"] == "Bearer ak_flag.flag-secret-00000"


def test_config_show_names_sources_but_never_the_secret(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run(capsys, "config", "show")
    assert code == 0
    assert "key: ak_test.… (from ALIMI_API_KEY)" in out
    assert "test-secret" not in out
    code, out, _ = run(capsys, "config", "show", "-o", "json")
    assert json.loads(out)["key_id"] == "ak_test"


IMPORTED = {
    "import_id": "imp_1",
    "rows": 4,
    "imported": 2,
    "inserted": 2,
    "updated": 0,
    "rejected": 2,
    "errors": [
        {"row": 3, "field": "phone", "message": "not a valid phone number"},
        {"row": 5, "field": None, "message": "has 9 values; the header names 3 columns"},
    ],
    "errors_truncated": False,
}


def _job(state: str, **more: Any) -> dict[str, Any]:
    """A job document as the API answers it."""
    return {
        "job_id": "imp_1",
        "kind": "subjects.import",
        "url": "/v1/imports/imp_1",
        "state": state,
        "progress": {"done": 0, "total": 4},
        "result": None,
        "problem": None,
        **more,
    }


def _import_job(result: dict[str, Any], polls: list[str]) -> Handler:
    """The API of an import: 202 with the job, then the job running, then succeeded."""
    reads = iter(
        [_job("running", progress={"done": 2, "total": 4}), _job("succeeded", result=result)]
    )

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/subjects/import":
            request.read()
            return httpx.Response(
                202, json=_job("queued"), headers={"Location": "/v1/imports/imp_1"}
            )
        polls.append(request.url.path)
        return httpx.Response(200, json=next(reads))

    return handle


def test_an_import_with_rejected_rows_lists_them__writes_them_to_a_file_and_exits_4(
    capsys: pytest.CaptureFixture[str], api: list[Handler], tmp_path: Path
) -> None:
    received: list[httpx.Request] = []
    polls: list[str] = []
    follow = _import_job(IMPORTED, polls)

    def handle(request: httpx.Request) -> httpx.Response:
        received.append(request)
        return follow(request)

    api.append(handle)
    source = tmp_path / "people.csv"
    source.write_text("external_id,name,phone\nc1,a,010-1234-5678\n")
    code, out, _ = run(capsys, "subjects", "import", "people.csv")
    assert code == 4
    assert "people.csv: 4 rows, 2 imported (2 new, 0 updated), 2 rejected (import imp_1)" in out
    assert "not a valid phone number" in out
    assert "Every rejected row is listed in people.errors.csv" in out
    assert (tmp_path / "people.errors.csv").read_text().splitlines() == [
        "row,field,message",
        "3,phone,not a valid phone number",
        "5,,has 9 values; the header names 3 columns",
    ]
    request = received[0]
    assert request.url.path == "/v1/subjects/import"
    assert request.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert request.content == source.read_bytes()
    assert polls == ["/v1/imports/imp_1", "/v1/imports/imp_1"]  # until it succeeded


def test_when_the_answer_holds_only_the_first_errors__then_the_file_gets_every_page(
    capsys: pytest.CaptureFixture[str], api: list[Handler], tmp_path: Path
) -> None:
    follow = _import_job({**IMPORTED, "errors_truncated": True, "error_pages": 2}, [])

    def handle(request: httpx.Request) -> httpx.Response:
        if "/errors/" not in request.url.path:
            return follow(request)
        page = int(request.url.path.rsplit("/", 1)[1])
        errors = [{"row": page * 10 + i, "field": "name", "message": "m"} for i in range(2)]
        return httpx.Response(200, json={"errors": errors})

    api.append(handle)
    (tmp_path / "people.ndjson").write_text('{"external_id": "c1"}\n')
    code, _, _ = run(
        capsys, "subjects", "import", "people.ndjson", "--errors", "bad.csv", "-o", "json"
    )
    assert code == 4
    rows = [line.split(",")[0] for line in (tmp_path / "bad.csv").read_text().splitlines()]
    assert rows == ["row", "10", "11", "20", "21"]


@pytest.mark.parametrize(
    ("status", "code"),
    [(500, 3), (409, 1)],
)
def test_when_the_import_job_fails__then_its_problem_is_shown_and_the_exit_code_says_which(
    capsys: pytest.CaptureFixture[str], api: list[Handler], tmp_path: Path, status: int, code: int
) -> None:
    problem = {"type": "urn:x", "title": "Job stopped", "status": status, "detail": "run it again"}

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/subjects/import":
            request.read()
            return httpx.Response(202, json=_job("queued"))
        return httpx.Response(200, json=_job("failed", problem=problem))

    api.append(handle)
    (tmp_path / "people.csv").write_text("external_id\nc1\n")
    exit_code, out, err = run(capsys, "subjects", "import", "people.csv")
    assert exit_code == code
    assert f"error: Job stopped (HTTP {status})" in err and "run it again" in err
    assert out == ""


def test_an_import_of_an_unknown_kind_of_file_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    (tmp_path / "people.xlsx").write_bytes(b"PK")
    code, _, err = run(capsys, "subjects", "import", "people.xlsx")
    assert code == 2 and "pass --type csv or ndjson" in err
    code, _, err = run(capsys, "subjects", "import", "missing.csv")
    assert code == 2 and "missing.csv: no such file" in err


def _incident(*notices: dict[str, Any]) -> dict[str, Any]:
    return {
        "incident_id": "inc_1",
        "title": "유출",
        "status": "investigating",
        "severity": "high",
        "deadline": "2026-12-01T00:00:00+00:00",
        "seconds_left": 3600,
        "people": 4,
        "recipients": 3,
        "notified": 3,
        "notified_share": 1.0,
        "regulator_report_due": [],
        "status_url": "http://x/s/p",
        "notices": list(notices),
    }


def _notice(state: str, by_channel: dict[str, dict[str, int]]) -> dict[str, Any]:
    return {
        "notice_id": "ntc_1",
        "seq": 1,
        "state": state,
        "recipients": 3,
        "counts_by_channel": by_channel,
        "fell_back": {},
    }


@pytest.fixture
def polls(monkeypatch: pytest.MonkeyPatch, api: list[Handler]) -> list[dict[str, Any]]:
    """The answers of successive GET /v1/incidents/inc_1, the last one repeated."""
    answers: list[dict[str, Any]] = []
    clock = iter(float(t) for t in range(10_000))
    monkeypatch.setattr(watch_module.time, "sleep", lambda _: None)
    monkeypatch.setattr(watch_module.time, "monotonic", lambda: next(clock))

    def handle(request: httpx.Request) -> httpx.Response:
        answer = answers.pop(0) if len(answers) > 1 else answers[0]
        return httpx.Response(200, json=answer)

    api.append(handle)
    return answers


def test_watch_prints_a_line_per_change_until_every_message_is_delivered(
    capsys: pytest.CaptureFixture[str], polls: list[dict[str, Any]]
) -> None:
    polls += [
        _incident(_notice("sending", {"kakao": {"claimed": 3}})),
        _incident(_notice("sending", {"kakao": {"claimed": 3}})),
        _incident(_notice("completed", {"kakao": {"sent": 2, "delivered": 1}})),
        _incident(_notice("completed", {"kakao": {"delivered": 3}})),
    ]
    code, out, _ = run(capsys, "watch", "inc_1", "--until", "delivered")
    assert code == 0
    lines = [line for line in out.splitlines() if line[:2].isdigit()]
    assert len(lines) == 3  # the second poll changed nothing
    assert "#1 sending (kakao 3 waiting) | 0/3 finished, 3 waiting" in lines[0]
    assert "#1 completed (kakao 2 sent, 1 delivered)" in lines[1]
    assert "legal deadline 1h 00m left, notified 100% of 3" in lines[2]
    assert "Every watched notice is delivered." in out


def test_watch_exits_4_when_messages_failed(
    capsys: pytest.CaptureFixture[str], polls: list[dict[str, Any]]
) -> None:
    polls.append(_incident(_notice("completed", {"sms": {"delivered": 2, "failed": 1}})))
    code, _, err = run(capsys, "watch", "inc_1")
    assert code == 4
    assert "warning: notice #1: 1 message(s) failed or were not delivered" in err


def test_watch_exits_5_when_the_timeout_passes_first(
    capsys: pytest.CaptureFixture[str], polls: list[dict[str, Any]]
) -> None:
    pending = _notice("pending_approval", {})
    polls.append(_incident(pending))
    code, out, err = run(capsys, "watch", "inc_1", "--timeout", "3", "-o", "json")
    assert code == 5
    assert json.loads(out)["notices"][0]["state"] == "pending_approval"
    assert "no notice under way yet (#1 pending_approval)" in err  # progress on stderr
    assert "--timeout passed" in err


def test_dead_list_shows_the_channels_and_last_errors(
    capsys: pytest.CaptureFixture[str], api: list[Handler]
) -> None:
    found = {
        "notice_id": "ntc_1",
        "incident_id": "inc_1",
        "state": "completed",
        "total": 3,
        "by_channel": {"sms": 2, "kakao": 1},
        "last_errors": [
            {"channel": "sms", "error": "E503 [busy]", "count": 2, "last_at": "2026-11-28"}
        ],
    }
    api.append(lambda r: httpx.Response(200, json=found))
    code, out, _ = run(capsys, "dead", "list", "ntc_1")
    assert code == 0
    assert "3 people given up on" in out and "alimi dead replay ntc_1" in out
    assert "E503 [busy]" in out  # not read as markup


def test_watch_goes_on_through_a_short_outage_of_the_api(
    capsys: pytest.CaptureFixture[str], polls: list[dict[str, Any]], api: list[Handler]
) -> None:
    answers = [
        httpx.Response(200, json=_incident(_notice("sending", {"kakao": {"claimed": 3}}))),
        *[httpx.Response(503) for _ in range(3)],  # one look: the client's three tries
        httpx.Response(200, json=_incident(_notice("completed", {"kakao": {"sent": 3}}))),
    ]
    api[0] = lambda request: answers.pop(0)
    code, out, err = run(capsys, "watch", "inc_1")
    assert code == 0 and "Every watched notice is done." in out
    assert "the API does not answer; trying again (Service Unavailable (HTTP 503))" in err


def test_watch_of_an_unknown_incident_stops_at_once(
    capsys: pytest.CaptureFixture[str], polls: list[dict[str, Any]], api: list[Handler]
) -> None:
    problem = {"title": "Not Found", "status": 404, "detail": "no incident with that id"}
    api[0] = lambda request: httpx.Response(404, json=problem, headers=PROBLEM)
    code, _, err = run(capsys, "watch", "inc_nope")
    assert code == 1 and err.startswith("error: Not Found (HTTP 404)")


def test_keys_create_sends_the_scopes_as_a_list_and_shows_the_new_key_once(
    capsys: pytest.CaptureFixture[str], api: list[Handler]
) -> None:
    sent: list[Any] = []

    def handle(request: httpx.Request) -> httpx.Response:
        sent.append(json.loads(request.content))
        created = {
            "key_id": "k1",
            "api_key": "ak_k1.new-secret",
            "name": "jane",
            "scopes": ["incidents:read", "notices:approve"],
        }
        return httpx.Response(201, json=created)

    api.append(handle)
    code, out, err = run(
        capsys, "keys", "create", "--name", "jane",
        "--scopes", "notices:approve,incidents:read", "--scopes", "incidents:read",
    )  # fmt: skip
    assert code == 0
    assert sent == [
        {
            "name": "jane",
            "scopes": ["notices:approve", "incidents:read"],
            "allow_self_approval": False,
        }
    ]
    assert out.count("ak_k1.new-secret") == 1 and "shown only this once" in err
    code, _, err = run(capsys, "keys", "create", "--name", "x", "--scopes", ",")
    assert code == 2 and "name at least one scope" in err


OVERDUE = {
    "seconds_left": -2 * 86_400,
    "overdue": True,
    "overdue_by_s": 2 * 86_400,
    "deadline_note": "Overdue by 2d 0h: the 72-hour legal deadline passed at 2026-12-01 00:00 UTC."
    " Tell the affected people without further delay.",
    "people": 1250,
    "recipients": 1200,
    "regulator_report_due": ["KR-PIPA"],
    "regulator_report_note": "The report to the Personal Information Protection Commission"
    " (PIPC) (KR-PIPA) is overdue by 2d 0h: make it now.",
}


def test_create_says_plainly_when_the_legal_deadline_has_already_passed(
    capsys: pytest.CaptureFixture[str], api: list[Handler], tmp_path: Path
) -> None:
    created = {"incident_id": "inc_1", "notice_id": "ntc_1", "status_url": "http://x/s/p"}
    api.append(lambda request: httpx.Response(201, json={**created, **OVERDUE}))
    (tmp_path / "i.yaml").write_text("title: 유출\n")
    code, out, _ = run(capsys, "incident", "create", "-f", "i.yaml")
    assert code == 0
    assert "Overdue by 2d 0h: the 72-hour legal deadline passed" in out


def test_show_says_what_is_overdue__the_notices_and_the_report_to_the_regulator(
    capsys: pytest.CaptureFixture[str], api: list[Handler]
) -> None:
    found = {**_incident(_notice("sending", {})), **OVERDUE}
    api.append(lambda request: httpx.Response(200, json=found))
    code, out, _ = run(capsys, "incident", "show", "inc_1")
    assert code == 0
    text = " ".join(out.split())  # the lines as a terminal would wrap them, joined
    assert "(overdue by 2d 0h)" in text
    assert "Tell the affected people without further delay." in text
    assert "(PIPC) (KR-PIPA) is overdue by 2d 0h: make it now." in text


def test_watch_says_the_deadline_passed_and_the_regulator_report_is_overdue(
    capsys: pytest.CaptureFixture[str], polls: list[dict[str, Any]]
) -> None:
    polls.append({**_incident(_notice("completed", {"sms": {"delivered": 3}})), **OVERDUE})
    code, out, _ = run(capsys, "watch", "inc_1")
    assert code == 0
    assert (
        "OVERDUE: legal deadline passed 2d 0h ago, regulator report overdue (KR-PIPA),"
        " notified 100% of 1200 recipients (1250 people)"
    ) in out


def test_preview_tells_the_approver_the_status_an_update_sets(
    capsys: pytest.CaptureFixture[str], api: list[Handler]
) -> None:
    preview = {
        "notice_id": "ntc_2",
        "state": "pending_approval",
        "incident_status": "resolved",
        "audience": {
            "people": 1,
            "recipients": 1,
            "merged": 0,
            "messages_by_channel": {"sms": 1},
            "skipped": {},
        },
        "messages": {},
    }
    job = {**_job("queued"), "job_id": "prv_1", "url": "/v1/previews/prv_1"}
    paths: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        paths.append(f"{request.method} {request.url.path}")
        if request.method == "POST":
            return httpx.Response(202, json=job)
        return httpx.Response(200, json={**job, "state": "succeeded", "result": preview})

    api.append(handle)
    code, out, _ = run(capsys, "notice", "preview", "ntc_2")
    assert paths == ["POST /v1/notices/ntc_2/preview", "GET /v1/previews/prv_1"]
    assert code == 0
    assert "Approving it also sets the incident's status to resolved" in out


def test_a_replay_follows_its_job_and_prints_what_it_sent(
    capsys: pytest.CaptureFixture[str], api: list[Handler]
) -> None:
    done = {
        "notice_id": "ntc_1",
        "batches": 2,
        "recipients": 150,
        "recipients_by_channel": {"sms": 150},
        "more_remain": False,
    }
    job = {**_job("queued"), "job_id": "rpl_1", "url": "/v1/replays/rpl_1"}
    paths: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        paths.append(f"{request.method} {request.url.path}")
        if request.method == "POST":
            return httpx.Response(202, json=job)
        return httpx.Response(200, json={**job, "state": "succeeded", "result": done})

    api.append(handle)
    code, out, _ = run(capsys, "dead", "replay", "ntc_1")
    assert code == 0
    assert "Replayed 2 batch(es), 150 people (150 by sms)." in out
    assert paths == ["POST /v1/notices/ntc_1/dead-letters/replay", "GET /v1/replays/rpl_1"]


@pytest.mark.parametrize("down", ["503", "unreachable"])
def test_when_the_api_stops_answering_while_a_job_runs__then_exit_3_naming_the_job(
    capsys: pytest.CaptureFixture[str], api: list[Handler], tmp_path: Path, down: str
) -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/subjects/import":
            request.read()
            return httpx.Response(202, json=_job("running"))
        if down == "unreachable":
            raise httpx.ConnectError("connection refused", request=request)
        return httpx.Response(503, text="down for maintenance")

    api.append(handle)
    (tmp_path / "people.csv").write_text("external_id\nc1\n")
    code, _, err = run(capsys, "subjects", "import", "people.csv")
    assert code == 3
    assert "the job goes on: GET /v1/imports/imp_1 says how it ends" in err


def test_when_following_a_job_is_interrupted__then_it_names_the_job_that_goes_on(
    capsys: pytest.CaptureFixture[str], api: list[Handler], tmp_path: Path
) -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/subjects/import":
            request.read()
            return httpx.Response(202, json=_job("running"))
        raise KeyboardInterrupt  # Ctrl-C while waiting for the job

    api.append(handle)
    (tmp_path / "people.csv").write_text("external_id\nc1\n")
    code, _, err = run(capsys, "subjects", "import", "people.csv")
    assert code == 130
    assert "stopped following; the job goes on: GET /v1/imports/imp_1" in err
