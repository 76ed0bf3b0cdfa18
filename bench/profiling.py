"""py-spy on every process of a benchmark run: where each one's time goes.

:func:`start` attaches ``py-spy record`` (raw, collapsed stacks; ``--nonblocking``
so the process is never paused) to each process, the database server included;
:func:`stop` ends them with SIGINT, which makes py-spy write its file; and
:func:`summary` prints each process's hottest frames (inclusive share of its
samples). The raw files open in any flame-graph tool (``flamegraph.pl``,
speedscope).
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

RATE_HZ = 67  # samples per second: a prime, so sampling never locks to a periodic task
TOP = 12


@dataclass
class Recorder:
    name: str
    path: Path
    process: subprocess.Popen[bytes]


def _py_spy() -> str:
    found = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(found).exists():
        raise RuntimeError("py-spy is not installed (it is in the dev extra: make install)")
    return found


def start(pids: dict[str, int], folder: Path) -> list[Recorder]:
    folder.mkdir(parents=True, exist_ok=True)
    py_spy = _py_spy()
    recorders = []
    for name, pid in pids.items():
        path = folder / f"{name}.txt"
        process = subprocess.Popen(
            [
                *(py_spy, "record", "-p", str(pid), "-r", str(RATE_HZ), "--nonblocking"),
                *("-f", "raw", "-o", str(path), "-d", "86400"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        recorders.append(Recorder(name, path, process))
    return recorders


def stop(recorders: list[Recorder]) -> None:
    for r in recorders:
        r.process.send_signal(signal.SIGINT)
    for r in recorders:
        try:
            r.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            r.process.kill()


def hottest(path: Path, top: int = TOP) -> tuple[int, list[tuple[float, str]]]:
    """(samples, the ``top`` frames by inclusive share) of a raw py-spy file."""
    inclusive: Counter[str] = Counter()
    total = 0
    if not path.exists():
        return 0, []
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        for frame in set(stack.split(";")):
            inclusive[frame] += n
    boring = ("<module>", "_bootstrap", "run (asyncio", "run_forever", "_run_once", "Thread.run")
    frames = [
        (100 * n / total, frame)
        for frame, n in inclusive.most_common()
        if not any(b in frame for b in boring)
    ]
    return total, frames[:top]


def summary(recorders: list[Recorder]) -> str:
    lines = []
    for r in recorders:
        total, frames = hottest(r.path)
        lines.append(f"{r.name}: {total} samples")
        lines += [f"  {share:5.1f}%  {frame[:110]}" for share, frame in frames]
    return "\n".join(lines)
