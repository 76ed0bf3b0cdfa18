"""``make run``: the local stack in the foreground with its logs interleaved, and the
commands to try it, until Ctrl-C."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from pathlib import Path

from alimi_devstack.processes import StackError
from alimi_devstack.stack import DEFAULT_AMQP_URL, Stack

CURL_EXAMPLE = """\
# make run's local keys: an operator who writes, and a second person who approves
OPERATOR='Authorization: Bearer ak_localoperator.local-operator-secret'
APPROVER='Authorization: Bearer ak_localapprover.local-approver-secret'
# 1. load two people into the subject directory
curl -s -X POST {intake}/v1/subjects -H "$OPERATOR" -H 'Content-Type: application/json' -d '[
  {{"external_id": "cust-1", "name": "김민준", "phone": "010-1234-5678",
    "tags": ["breach-2026-11"]}},
  {{"external_id": "cust-2", "name": "Jane Doe", "phone": "+821098765432", "locale": "en",
    "channels": ["sms"], "tags": ["breach-2026-11"]}}
]'
# 2. post an incident and its first notice to everyone tagged breach-2026-11
NOTICE=$(curl -s -X POST {intake}/v1/incidents -H "$OPERATOR" \\
  -H 'Content-Type: application/json' -d '{{
  "title": "회원 정보 유출", "severity": "high", "discovered_at": "2026-11-28T09:00:00+09:00",
  "contact": "고객센터 1588-0000",
  "notice": {{"body": "이름과 전화번호가 유출되었습니다.",
             "translations": {{"en": {{"body": "Your name and phone number were exposed."}}}}}},
  "audience": {{"filter": {{"tags_any": ["breach-2026-11"]}}}}
}}' | python3 -c 'import json, sys; print(json.load(sys.stdin)["notice_id"])')
# 3. nothing is sent until a second person approves the notice
curl -s -X POST {intake}/v1/notices/$NOTICE/approve -H "$APPROVER"
# 4. see what the sandbox received: KakaoTalk for cust-1, SMS for cust-2, Slack for staff
curl -s {sandbox}/_sandbox/kakao/messages
curl -s {sandbox}/_sandbox/sms/messages
curl -s {sandbox}/_sandbox/slack/messages
"""


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
