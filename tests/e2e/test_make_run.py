"""`make run` on this machine, driven by the README's own curl example."""

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


def _inbox(sandbox: str, kind: str, at_least: int) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    for _ in range(120):
        with urllib.request.urlopen(f"{sandbox}/_sandbox/{kind}/messages") as resp:
            messages = json.load(resp)["messages"]
        if len(messages) >= at_least:
            break
        time.sleep(0.25)
    return messages


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
        script = _readme_example().replace(DEFAULT_INTAKE, intake).replace(DEFAULT_SANDBOX, sandbox)
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script], capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
        assert '"incident_id"' in done.stdout

        [kakao] = _inbox(sandbox, "kakao", 1)
        assert kakao["recipient_no"] == "01012345678"
        assert kakao["template_code"] == "ALIMI_BREACH_KO"
        assert "김민준님, 개인정보 유출 사고를 알려드립니다." in kakao["text"]
        [sms] = _inbox(sandbox, "sms", 1)
        assert sms["recipient_no"] == "01098765432"
        assert "Dear Jane Doe" in sms["body"] and "Your name and phone number" in sms["body"]
        slack = _inbox(sandbox, "slack", 2)  # the notice, then the summary in its thread
        assert slack[0]["channel"] == "#incident-response" and "회원 정보 유출" in slack[0]["text"]
        assert any("completed" in m["text"] for m in slack[1:]), slack
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
