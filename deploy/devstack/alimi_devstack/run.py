"""``make run``: the local stack in the foreground with its logs interleaved, and the
commands to try it (:mod:`alimi_devstack.walkthrough`), until Ctrl-C."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from pathlib import Path

from alimi_devstack.processes import StackError
from alimi_devstack.stack import DEFAULT_AMQP_URL, Stack
from alimi_devstack.walkthrough import CURL_EXAMPLE


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m alimi_devstack", description=__doc__)
    parser.add_argument(
        "--data-dir",
        default=os.environ.get("ALIMI_DATA_DIR", ".alimi-data"),
        help="where SecantusDB keeps its files and the processes their logs",
    )
    parser.add_argument(
        "--intake-port", type=int, default=int(os.environ.get("INTAKE_PORT", "8080"))
    )
    parser.add_argument(
        "--sandbox-port", type=int, default=int(os.environ.get("SANDBOX_PORT", "8090"))
    )
    parser.add_argument(
        "--receipts-port", type=int, default=int(os.environ.get("RECEIPTS_PORT", "8081"))
    )
    parser.add_argument(
        "--namespace",
        default=os.environ.get("ALIMI_NAMESPACE", "alimi"),
        help="prefix of queue and exchange names",
    )
    args = parser.parse_args(argv)
    data_dir = Path(args.data_dir).resolve()
    stack = Stack(
        workdir=data_dir,
        namespace=args.namespace,
        amqp_url=os.environ.get("AMQP_URL", DEFAULT_AMQP_URL),
        mongo_url=os.environ.get("MONGO_URL") or None,
        intake_port=args.intake_port,
        sandbox_port=args.sandbox_port,
        receipts_port=args.receipts_port,
        echo_logs=True,
    )
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    try:
        if stack.mongo_url is None:
            print(f"SecantusDB keeps its data under {data_dir / 'mongo-data'}")
        stack.start_all()
        print("\nAlimi is running.")
        print(f"  intake API:      {stack.intake_url}   (POST /v1/incidents)")
        print(f"  sandbox gateway: {stack.sandbox_url}")
        print(f"  receipts (provider delivery reports): {stack.receipts_url}")
        print("\nTry it:\n")
        print(CURL_EXAMPLE.format(intake=stack.intake_url, sandbox=stack.sandbox_url))
        print("Press Ctrl-C to stop.\n", flush=True)
        while not stopping.wait(0.5):
            for proc in stack.processes.values():
                if proc.popen.poll() is not None:
                    raise StackError(f"{proc.name} exited with code {proc.popen.returncode}")
    except KeyboardInterrupt:
        pass
    except StackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        print("\nStopping...", flush=True)
        stack.stop_all()
    return 0
