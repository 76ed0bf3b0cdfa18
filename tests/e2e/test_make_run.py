"""`make run` on this machine, driven by the README's own curl example, as it prints it."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from alimi_devstack import CURL_EXAMPLE, free_port, wait_for_port

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_INTAKE = "http://127.0.0.1:8080"
DEFAULT_SANDBOX = "http://127.0.0.1:8090"


def _readme_example() -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Post a first incident", 1)[1]
    match = re.search(r"```sh\n(.*?)```", section, re.S)
    assert match, "README has no curl example under 'Post a first incident'"
    return match.group(1)


def test_the_readme_example_is_the_one_make_run_prints() -> None:
    assert _readme_example() == CURL_EXAMPLE.format(intake=DEFAULT_INTAKE, sandbox=DEFAULT_SANDBOX)


# A log line of a service, which make run interleaves with what it prints ("  intake | {...").
LOG_LINE = re.compile(r"^\s*[a-z][a-z0-9.-]* \| ")


def _printed_block(printed: str) -> str:
    """The "Try it" block make run printed, without the log lines written among it."""
    block = printed.split("Try it:\n", 1)[1].split("Press Ctrl-C to stop", 1)[0]
    return "".join(line for line in block.splitlines(True) if not LOG_LINE.match(line)).strip()


def _answers(stdout: str) -> list[dict[str, Any]]:
    """What the block printed: one JSON document a line (curl -w '\\n')."""
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def _get(url: str, headers: dict[str, str] | None = None) -> Any:
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {})) as resp:
        return json.load(resp)


def test_when_make_run_is_up__then_the_readme_curl_example_reaches_each_person_once(
    tmp_path: Path, amqp_url: str, namespace: str
) -> None:
    intake_port, sandbox_port = free_port(), free_port()
    env = {
        **os.environ,
        "INTAKE_PORT": str(intake_port),
        "SANDBOX_PORT": str(sandbox_port),
        "RECEIPTS_PORT": str(free_port()),
        "ALIMI_DATA_DIR": str(tmp_path / "data"),
        "ALIMI_NAMESPACE": namespace,
    }
    env.pop("MONGO_URL", None)
    proc = subprocess.Popen(
        ["make", "--no-print-directory", "run"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    output: list[str] = []
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            output.append(line)
            if "Press Ctrl-C to stop" in line:
                break
        printed = "".join(output)
        assert "Press Ctrl-C to stop" in printed, printed[-3000:]
        assert f"http://127.0.0.1:{intake_port}" in printed

        intake, sandbox = f"http://127.0.0.1:{intake_port}", f"http://127.0.0.1:{sandbox_port}"
        script = _printed_block(printed)  # the block as make run printed it, its ports its own
        assert script == CURL_EXAMPLE.format(intake=intake, sandbox=sandbox).strip()
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script], capture_output=True, text=True, timeout=150
        )
        assert done.returncode == 0, done.stderr
        assert '"incident_id"' in done.stdout

        # Step 4's three listings, as the block itself printed them: each waited for its
        # message and did not time out, and Hangul comes as it is, not as \uXXXX.
        kakao, sms, slack = _answers(done.stdout)[-3:]
        for listing in (kakao, sms, slack):
            assert listing["count"] >= 1 and listing["timed_out"] is False, listing
        assert "김민준님, 개인정보 유출 사고를 알려드립니다." in done.stdout
        assert "회원 정보 유출" in done.stdout and "\\u" not in done.stdout

        [message] = kakao["messages"]
        assert message["recipient_no"] == "01012345678"
        assert message["template_code"] == "ALIMI_BREACH_KO"
        [message] = sms["messages"]
        assert message["recipient_no"] == "01098765432"
        assert (
            "Dear Jane Doe" in message["body"] and "Your name and phone number" in message["body"]
        )

        # The staff summary sits in the thread of the notice's own message.
        [summary] = slack["messages"]
        assert summary["metadata"]["event_type"] == "alimi_notice_summary"
        assert "completed" in summary["text"]
        thread = _get(f"{sandbox}/_sandbox/slack/messages?thread_ts={summary['thread_ts']}")
        parent = thread["messages"][0]
        assert parent["ts"] == summary["thread_ts"] != summary["ts"]
        assert parent["channel"] == "#incident-response" and "회원 정보 유출" in parent["text"]

        # Discovered at the moment it was posted: the legal deadline is still ahead.
        incident_id = summary["metadata"]["event_payload"]["incident_id"]
        operator = re.search(r"OPERATOR='Authorization: (Bearer [^']+)'", script)
        assert operator
        incident = _get(
            f"{intake}/v1/incidents/{incident_id}", {"Authorization": operator.group(1)}
        )
        assert incident["overdue"] is False and incident["seconds_left"] > 0, incident
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            raise
    assert proc.stdout is not None
    rest = proc.stdout.read()
    proc.stdout.close()
    # make re-raises the Ctrl-C it received once the stack has stopped cleanly
    assert proc.returncode in (0, -signal.SIGINT), "".join(output)[-3000:] + rest
    assert "Stopping..." in rest
    assert not wait_for_port("127.0.0.1", intake_port, timeout_s=0.5), "intake still listening"
