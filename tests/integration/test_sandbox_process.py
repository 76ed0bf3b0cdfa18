"""``python -m alimi_sandbox`` as a real process: start-up checks and clean shutdown."""

import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from alimi_devstack import free_port


def sandbox_env(**variables: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SANDBOX_")}
    # The package may be importable only through this interpreter's sys.path.
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    return env | variables


@contextmanager
def running_sandbox(**variables: str) -> Iterator[tuple[subprocess.Popen[str], int]]:
    """The sandbox process on a free port, healthy; killed afterwards if still running."""
    port = free_port()
    with subprocess.Popen(
        [sys.executable, "-m", "alimi_sandbox"],
        env=sandbox_env(SANDBOX_PORT=str(port), **variables),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    ) as process:
        try:
            assert wait_until_healthy(port) == {"status": "ok"}
            yield process, port
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()


def stop(process: subprocess.Popen[str]) -> str:
    """SIGTERM, wait for the exit; returns what the process wrote to stderr."""
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=15)
    return stderr


def test_when_a_variable_is_invalid__then_start_up_fails_naming_it_without_traceback() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "alimi_sandbox"],
        env=sandbox_env(SANDBOX_ERROR_RATE="lots"),
        capture_output=True,
        text=True,
        timeout=30,
    )

    assert result.returncode == 1
    assert "SANDBOX_ERROR_RATE" in result.stderr
    assert "Traceback" not in result.stderr


def test_when_sent_sigterm__then_the_server_stops_cleanly() -> None:
    with running_sandbox() as (process, _):
        stderr = stop(process)

    assert process.returncode == 0
    assert "Traceback" not in stderr


def test_when_sent_sigterm_while_a_call_is_held__then_it_stops_without_waiting_out_the_hang() -> (
    None
):
    variables = {"SANDBOX_TIMEOUT_RATE": "1", "SANDBOX_HANG_MS": "600000"}
    with running_sandbox(SANDBOX_LATENCY_MS="0", **variables) as (process, port):
        send = urllib.request.Request(
            f"http://127.0.0.1:{port}/sms/v3.0/appKeys/sandbox-app-key/sender/sms",
            data=json.dumps(
                {
                    "body": "x",
                    "sendNo": "0215990000",
                    "recipientList": [{"recipientNo": "01012345678"}],
                }
            ).encode(),
            headers={"X-Secret-Key": "sandbox-secret", "Content-Type": "application/json"},
        )
        with pytest.raises(TimeoutError):
            urllib.request.urlopen(send, timeout=0.3)
        started = time.monotonic()
        stderr = stop(process)
        stopped_in = time.monotonic() - started

    assert process.returncode == 0
    assert stopped_in < 4  # run_app's own limit on open requests is 5 s
    assert "Traceback" not in stderr


def wait_until_healthy(port: int, timeout: float = 15) -> object:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as reply:
                return json.load(reply)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def test_when_a_client_dies_mid_body__then_the_sandbox_logs_it_without_a_traceback() -> None:
    with running_sandbox(SANDBOX_LATENCY_MS="0") as (process, port):
        with socket.create_connection(("127.0.0.1", port)) as client:
            client.sendall(
                b"POST /sms/v3.0/appKeys/sandbox-app-key/sender/sms HTTP/1.1\r\n"
                b"Host: sandbox\r\nX-Secret-Key: sandbox-secret\r\n"
                b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
                b'{"body": '
            )
            time.sleep(0.2)  # the handler is reading the body
            # Close as a killed process's kernel does with data in flight: a reset.
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        assert wait_until_healthy(port) == {"status": "ok"}  # still serving
        stderr = stop(process)

    assert "a client went away before its request body arrived" in stderr
    assert "Traceback" not in stderr
    assert '"level": "error"' not in stderr
