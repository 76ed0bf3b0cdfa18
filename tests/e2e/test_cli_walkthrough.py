"""The README's operator walkthrough, run with the installed ``alimi`` against every service.

The README's commands are taken as they are written (only the URL changes),
run one by one in one shell so that their variables carry over, and each
one's exit code and output are checked.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from alimi_devstack import Stack

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_INTAKE = "http://127.0.0.1:8080"
ALIMI = Path(sys.executable).parent / "alimi"
ASSIGNMENT = re.compile(r"^([A-Z_]+)=\$\(")
ID = {"inc": re.compile(r"^inc_[0-9a-f]{20}$"), "ntc": re.compile(r"^ntc_[0-9a-f]{20}$")}


def _walkthrough() -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Operator walkthrough", 1)[1]
    match = re.search(r"```sh\n(.*?)```", section, re.S)
    assert match, "README has no sh block under 'Operator walkthrough'"
    return match.group(1)


def _commands(block: str) -> list[str]:
    """The block's commands, without comments and blank lines (``\\`` joins lines)."""
    commands, pending = [], ""
    for line in block.splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        pending += line
        if pending.endswith("\\"):
            pending = pending[:-1] + "\n"
            continue
        commands.append(pending)
        pending = ""
    return commands


@dataclass
class Step:
    command: str
    code: int
    out: str
    err: str


def _run_each(commands: list[str], workdir: Path, env: dict[str, str]) -> list[Step]:
    """Run ``commands`` in one bash, each one's exit code and output kept apart."""
    logs = workdir / ".steps"
    logs.mkdir()
    script = []
    for i, command in enumerate(commands):
        script.append(f"{{ {command}\n}} >{logs}/{i}.out 2>{logs}/{i}.err; echo $? >{logs}/{i}.rc")
        if assigned := ASSIGNMENT.match(command):  # the value, as the next commands see it
            script.append(f'printf "%s\\n" "${assigned.group(1)}" >{logs}/{i}.out')
    subprocess.run(["bash", "-c", "\n".join(script)], cwd=workdir, env=env, check=True, timeout=150)
    return [
        Step(
            command,
            int((logs / f"{i}.rc").read_text()),
            (logs / f"{i}.out").read_text(),
            (logs / f"{i}.err").read_text(),
        )
        for i, command in enumerate(commands)
    ]


def _inbox(sandbox: str, kind: str) -> list[dict[str, Any]]:
    with urllib.request.urlopen(f"{sandbox}/_sandbox/{kind}/messages") as resp:
        messages: list[dict[str, Any]] = json.load(resp)["messages"]
        return messages


def _configure_sandbox(sandbox: str, **changes: Any) -> None:
    request = urllib.request.Request(
        f"{sandbox}/_sandbox/config",
        data=json.dumps(changes).encode(),
        headers={"Content-Type": "application/json"},
        method="PUT",
    )
    with urllib.request.urlopen(request) as resp:
        assert resp.status == 200


def test_the_readme_walkthrough_uses_the_local_keys_and_the_example_files() -> None:
    block = _walkthrough()
    assert DEFAULT_INTAKE in block
    for key in ("operator", "approver"):
        assert f"ak_local{key}.local-{key}-secret" in block
    for example in ("subjects.csv", "incident.yaml", "update.yaml"):
        assert f"examples/{example}" in block and (ROOT / "examples" / example).exists()


def test_when_an_operator_follows_the_readme__then_everyone_is_told_twice_and_it_shows(
    stack: Stack, tmp_path: Path
) -> None:
    # cust-3's number ends in 3333: not a KakaoTalk user, so they fall back to SMS.
    _configure_sandbox(stack.sandbox_url, kakao_not_user_suffixes="3333")
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALIMI_")}
    env.update(
        PATH=f"{ALIMI.parent}{os.pathsep}{env.get('PATH', '')}",
        XDG_CONFIG_HOME=str(tmp_path / "config"),  # no operator's own config file
    )
    env.pop("COLUMNS", None)
    block = _walkthrough().replace(DEFAULT_INTAKE, stack.intake_url)

    steps = _run_each(_commands(block), tmp_path, env)

    def step(fragment: str, nth: int = 0) -> Step:
        return [s for s in steps if fragment in s.command][nth]

    for s in steps:
        expected = 4 if "subjects import" in s.command else 0
        assert s.code == expected, f"{s.command}\nexit {s.code}\n{s.out}\n{s.err}"

    imported = step("subjects import")
    assert "subjects.csv: 5 rows, 3 imported (3 new, 0 updated), 2 rejected" in imported.out
    assert re.search(r"5\s+phone\s+Value error, not a valid phone number", imported.out)
    assert re.search(r"6\s+locale\s+String should match pattern", imported.out)
    assert "Every rejected row is listed in subjects.errors.csv" in imported.out
    report = (tmp_path / "subjects.errors.csv").read_text().splitlines()
    assert [line.split(",")[:2] for line in report] == [
        ["row", "field"],
        ["5", "phone"],
        ["6", "locale"],
    ]

    incident_id = step("INCIDENT=").out.strip()
    notice_id = step("NOTICE=").out.strip()
    update_id = step("UPDATE=").out.strip()
    assert ID["inc"].match(incident_id) and ID["ntc"].match(notice_id), (incident_id, notice_id)
    assert ID["ntc"].match(update_id) and update_id != notice_id

    preview = step("notice preview")
    assert f"Notice {notice_id} (pending_approval) is for 3 people: 3 messages" in preview.out
    assert "[회원 정보 유출]" in preview.out and "Dear customer" in preview.out
    assert f"Notice {notice_id} is approved" in step("notice approve").out
    assert f"Notice {update_id} is approved" in step("notice approve", 1).out

    first_watch, second_watch = step("alimi watch"), step("alimi watch", 1)
    for watched in (first_watch, second_watch):
        assert "Every watched notice is delivered." in watched.out
        assert re.search(r"\d\d:\d\d:\d\d #\d \w+", watched.out)  # progress lines, no terminal
    # The first notice: kakao for cust-1, sms for cust-2, and cust-3 fell back from kakao to sms.
    assert re.search(
        rf"#1 {notice_id}\s+completed\s+kakao\s+0\s+1\s+0\s+1\s+0\s+0", first_watch.out
    ), first_watch.out
    assert re.search(r"\n\s+sms\s+0\s+2\s+0\s+0\s+0\s+0", first_watch.out), first_watch.out
    assert "legal deadline" in first_watch.out and "3/3 finished" in first_watch.out
    assert f"#2 {update_id}" in second_watch.out and f"#1 {notice_id}" not in second_watch.out

    shown = json.loads(step("--output json").out)
    assert shown["incident_id"] == incident_id and shown["status"] == "identified"
    assert [n["state"] for n in shown["notices"]] == ["completed", "completed"]
    for notice in shown["notices"]:
        assert notice["counts"] == {"delivered": 3}, notice
        assert notice["fell_back"] == {"kakao": 1}

    kakao, sms = _inbox(stack.sandbox_url, "kakao"), _inbox(stack.sandbox_url, "sms")
    assert sorted(m["recipient_no"] for m in kakao) == ["01012345678"] * 2
    assert sorted(m["recipient_no"] for m in sms) == ["01022223333"] * 2 + ["01098765432"] * 2
    assert any("조사 진행 안내" in m["text"] for m in kakao)  # the update's template

    # Four-eyes: the operator's own key may not approve; the API's refusal, readably, exit 1.
    cli_env = {**env, "ALIMI_URL": stack.intake_url}
    refused = _alimi(
        cli_env, tmp_path, "notice", "approve", notice_id, "--key", stack.api_key("operator")
    )
    assert refused.returncode == 1
    assert refused.stderr.splitlines()[:2] == [
        "error: Forbidden (HTTP 403)",
        "  this API key lacks the scope 'notices:approve' this request needs",
    ]
    assert "local-operator-secret" not in refused.stderr
    nothing_dead = _alimi(
        cli_env, tmp_path, "dead", "list", notice_id, "--key", stack.api_key("operator")
    )
    assert nothing_dead.returncode == 0
    assert f"Notice {notice_id} has no dead letters." in nothing_dead.stdout


def _alimi(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ALIMI), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=30
    )
