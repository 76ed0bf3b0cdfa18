"""The local stack's processes: free ports, waits until something answers, and a
child process whose output is logged with its name."""

from __future__ import annotations

import asyncio
import contextlib
import random
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TypeVar

T = TypeVar("T")


class StackError(RuntimeError):
    pass


_GIVEN_PORTS: set[int] = set()


def _ephemeral_start() -> int:
    """The first port the kernel hands to outgoing connections (Linux: 32768)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port() -> int:
    """A port free to listen on, below the range outgoing connections are given.

    A port the kernel picks with ``bind(0)`` comes from that range: between
    this check and the service binding it, any outgoing connection (the
    tests open thousands) could take it, and the service would fail to start
    with "address already in use". None of this process's earlier answers is
    given twice.
    """
    low, high = 20000, min(_ephemeral_start(), 65536)
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(low, high)
        if port in _GIVEN_PORTS:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _GIVEN_PORTS.add(port)
        return port
    with socket.socket() as s:  # that range is full: let the kernel choose
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(host: str, port: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=1):
            return True
        time.sleep(0.1)
    return False


def rabbitmq_answers(amqp_url: str) -> bool:
    """Whether a node of ``amqp_url`` (one URL, or a cluster's, comma-separated) answers."""
    from urllib.parse import urlparse

    for url in amqp_url.split(","):
        parsed = urlparse(url.strip())
        if wait_for_port(parsed.hostname or "127.0.0.1", parsed.port or 5672, timeout_s=2):
            return True
    return False


async def eventually(predicate: Callable[[], Awaitable[T]], within_s: float, what: str) -> T:
    """Poll ``predicate`` until it returns something truthy; fail naming ``what``."""
    deadline = time.monotonic() + within_s
    last = None
    while time.monotonic() < deadline:
        last = await predicate()
        if last:
            return last
        await asyncio.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}; last: {last}")


def wait_ready(url: str, timeout_s: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    last = ""
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise StackError(f"{url}: process exited with code {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError) as exc:
            last = str(exc)
        time.sleep(0.2)
    raise StackError(f"{url} not ready after {timeout_s:.0f}s ({last})")


def pump(stream: IO[bytes], prefix: str, sink: IO[str]) -> None:
    """Copy ``stream``'s lines to ``sink``, each after ``prefix`` (a process's name)."""
    for line in iter(stream.readline, b""):
        sink.write(f"{prefix} {line.decode(errors='replace').rstrip()}\n")
        sink.flush()


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    ops_url: str | None
    log_path: Path | None = None

    def signal(self, sig: int) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(sig)

    def stop(self, timeout_s: float = 30) -> int | None:
        self.signal(signal.SIGTERM)
        try:
            return self.popen.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            return self.popen.wait()

    def kill(self) -> int:
        """SIGKILL (no chance to clean up, as in a crash); wait and return the exit code."""
        self.signal(signal.SIGKILL)
        return self.popen.wait()

    @property
    def running(self) -> bool:
        return self.popen.poll() is None
