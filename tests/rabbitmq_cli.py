"""rabbitmqctl from the tests: the connections a test's processes hold, and closing them.

Against the default broker (``rabbitmqctl`` as installed) or, with ``cluster_node``,
against a node of the local cluster of ``make cluster`` (``.ci/rabbitmq-cluster ctl``,
which sets that cluster's cookie and node name). A cluster lists the connections of
all its nodes from any one of them.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

CLUSTER_SCRIPT = Path(__file__).resolve().parents[1] / ".ci" / "rabbitmq-cluster"
CONNECTION_NAME = re.compile(r'\{"connection_name","([^"]*)"\}')


def rabbitmqctl() -> str | None:
    return shutil.which("rabbitmqctl") or (
        "/usr/sbin/rabbitmqctl" if Path("/usr/sbin/rabbitmqctl").exists() else None
    )


def ctl_command(cluster_node: int | None = None) -> list[str]:
    """The command line of rabbitmqctl, for the default broker or a cluster node (1-3)."""
    if cluster_node is not None:
        return ["bash", str(CLUSTER_SCRIPT), "ctl", str(cluster_node)]
    ctl = rabbitmqctl()
    assert ctl, "rabbitmqctl not found"
    return [ctl]


def ctl(*args: str, cluster_node: int | None = None) -> str:
    """Run rabbitmqctl with ``args``; its standard output."""
    done = subprocess.run(
        [*ctl_command(cluster_node), *args], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, f"rabbitmqctl {' '.join(args)}: {done.stderr or done.stdout}"
    return done.stdout


def broker_connections(namespace: str, *, cluster_node: int | None = None) -> list[str]:
    """Erlang pids of the broker's connections whose client named itself ``alimi:<namespace>``.

    (The JSON formatter prints pids in a form ``close_connection`` does not
    take; the table one prints ``<rabbit@host.1.2.3>``, which it does.)
    """
    listed = ctl(
        "--silent", "list_connections", "pid", "client_properties", cluster_node=cluster_node
    )
    wanted = f"alimi:{namespace}"
    pids = []
    for line in listed.splitlines():
        pid, _, properties = line.partition("\t")
        name = CONNECTION_NAME.search(properties)
        if name and name.group(1) == wanted:
            pids.append(pid)
    return pids


def close_broker_connections(pids: list[str], reason: str) -> None:
    """``rabbitmqctl close_connection`` for each pid, all at the same moment."""
    running = [
        subprocess.Popen(
            [*ctl_command(), "--quiet", "close_connection", pid, reason],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for pid in pids
    ]
    failed = []
    for pid, proc in zip(pids, running, strict=True):
        output, _ = proc.communicate(timeout=60)
        if proc.returncode != 0:
            failed.append(f"{pid}: {output.strip()}")
    assert not failed, f"close_connection failed: {failed}"
