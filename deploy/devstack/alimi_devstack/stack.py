"""The local stack: SecantusDB, the sandbox and every service as separate processes
for one namespace, each on free ports, started and stopped together."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from alimi import api_keys, templates
from alimi.store import Store
from alimi_devstack.processes import (
    Process,
    StackError,
    free_port,
    pump,
    rabbitmq_answers,
    wait_for_port,
    wait_ready,
)

DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"
# Signs the sandbox's delivery reports to the receipts service; local runs only.
LOCAL_REPORT_SECRET = "sandbox-report-secret"

# Fixed API keys for local runs and tests only: make run's own database, never production.
# The operator writes, a second person approves (four-eyes).
LOCAL_KEYS: dict[str, tuple[str, list[str]]] = {
    "localoperator": (
        "local-operator-secret",
        ["subjects:write", "incidents:write", "incidents:read", "receipts:read"],
    ),
    "localapprover": ("local-approver-secret", ["notices:approve", "incidents:read"]),
    "localadmin": ("local-admin-secret", ["admin"]),
}


@dataclass
class Stack:
    """Every Alimi process for one namespace; each gets free ports."""

    workdir: Path
    namespace: str = "alimi"
    amqp_url: str = DEFAULT_AMQP_URL
    mongo_url: str | None = None
    mongo_db: str = "alimi"
    intake_port: int = field(default_factory=free_port)
    sandbox_port: int = field(default_factory=free_port)
    receipts_port: int = field(default_factory=free_port)
    echo_logs: bool = False  # True: interleave logs on stdout; False: one file per process
    extra_env: dict[str, str] = field(default_factory=dict)
    # Processes of a service beyond the first: {"segmenter": 2, "delivery-sms": 3}. The
    # first keeps the service's name; the others are "<name>.2", "<name>.3", ...
    replicas: dict[str, int] = field(default_factory=dict)
    processes: dict[str, Process] = field(default_factory=dict)
    env_overrides: dict[str, dict[str, str]] = field(default_factory=dict)
    mongo_process: Process | None = None

    @property
    def intake_url(self) -> str:
        return f"http://127.0.0.1:{self.intake_port}"

    @property
    def receipts_url(self) -> str:
        return f"http://127.0.0.1:{self.receipts_port}"

    @property
    def sandbox_url(self) -> str:
        return f"http://127.0.0.1:{self.sandbox_port}"

    # -- dependencies ---------------------------------------------------------

    def start_mongo(self, data_dir: Path | None = None) -> str:
        """Start SecantusDB on a free port; returns the MongoDB URL."""
        exe = shutil.which("secantusd-py") or str(Path(sys.executable).parent / "secantusd-py")
        if not Path(exe).exists():
            raise StackError("secantusd-py not found: install the dev extra (make install)")
        port = free_port()
        data = data_dir or self.workdir / "mongo-data"
        data.mkdir(parents=True, exist_ok=True)
        self.mongo_process = self._spawn(
            "mongo",
            [
                exe,
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--storage-path",
                str(data),
                "--enable-test-commands",
                "--log-level",
                "WARNING",
            ],
            env=os.environ.copy(),
            ops_url=None,
        )
        if not wait_for_port("127.0.0.1", port, timeout_s=60):
            raise StackError(
                f"SecantusDB did not start on port {port}; see {self.mongo_process.log_path}"
            )
        # Retryable writes off for this development server only: SecantusDB keeps a
        # record of every retryable write for 30 minutes and, past 10,000 of them,
        # sorts them all on each write (a fifth of its CPU at 100,000 people; see
        # bench/README.md). Alimi's writes are idempotent or transactional, so a
        # write that fails is retried with its message; production's MONGO_URL keeps
        # MongoDB's default (retryable writes on).
        self.mongo_url = f"mongodb://127.0.0.1:{port}/?directConnection=true&retryWrites=false"
        return self.mongo_url

    def check_rabbitmq(self) -> None:
        if not rabbitmq_answers(self.amqp_url):
            raise StackError(
                "RabbitMQ does not answer at "
                f"{self.amqp_url.split('@')[-1]}. Start it with `rabbitmq-server -detached` "
                "(Debian package rabbitmq-server) or set AMQP_URL."
            )

    # -- services -------------------------------------------------------------

    def service_env(self, ops_port: int) -> dict[str, str]:
        assert self.mongo_url, "start_mongo() or pass mongo_url first"
        env = os.environ.copy()
        env.update(
            {
                "ALIMI_NAMESPACE": self.namespace,
                "ALIMI_AMQP_URL": self.amqp_url,
                "ALIMI_MONGO_URL": self.mongo_url,
                "ALIMI_MONGO_DB": self.mongo_db,
                "ALIMI_OPS_HOST": "127.0.0.1",
                "ALIMI_OPS_PORT": str(ops_port),
                "ALIMI_HTTP_HOST": "127.0.0.1",
                "ALIMI_HTTP_PORT": str(self.intake_port),
                "ALIMI_PUBLIC_BASE_URL": self.intake_url,
                "ALIMI_SMS_API_URL": self.sandbox_url,
                "ALIMI_KAKAO_API_URL": self.sandbox_url,
                "ALIMI_SLACK_API_URL": f"{self.sandbox_url}/slack/api/",
                "SANDBOX_HOST": "127.0.0.1",
                "SANDBOX_PORT": str(self.sandbox_port),
                "SANDBOX_SMS_REPORT_URL": f"{self.receipts_url}/v1/reports/sms",
                "SANDBOX_KAKAO_REPORT_URL": f"{self.receipts_url}/v1/reports/kakao",
                "SANDBOX_REPORT_SECRET": LOCAL_REPORT_SECRET,
                "ALIMI_REPORT_SECRET": LOCAL_REPORT_SECRET,
            }
        )
        env.update(self.extra_env)
        return env

    def start_service(
        self, name: str, module_args: list[str], env: dict[str, str] | None = None
    ) -> Process:
        """Start ``python -m <module_args>`` as ``name`` and wait for its ``/readyz``."""
        ops_port = free_port()
        full_env = self.service_env(ops_port)
        full_env.update(env or {})
        self.env_overrides[name] = dict(env or {})
        if name == "sandbox":
            ready = f"{self.sandbox_url}/readyz"
        else:
            ready = f"http://127.0.0.1:{ops_port}/readyz"
        proc = self._spawn(
            name,
            [sys.executable, "-m", *module_args],
            env=full_env,
            ops_url=ready.rsplit("/", 1)[0],
        )
        self.processes[name] = proc
        wait_ready(ready, timeout_s=60, proc=proc.popen)
        return proc

    def start_all(self) -> None:
        self.check_rabbitmq()
        if self.mongo_url is None:
            self.start_mongo()
        self.start_service(
            "receipts", ["alimi_receipts"], env={"ALIMI_HTTP_PORT": str(self.receipts_port)}
        )
        self.start_service("sandbox", ["alimi_sandbox"])
        self.approve_kakao_templates()
        self.start_service("intake", ["alimi_intake"])
        self.seed_api_keys()
        for name in self.replica_names("segmenter"):
            self.start_service(name, ["alimi_segmenter"])
        for channel in ("sms", "kakao", "slack"):
            for name in self.replica_names(f"delivery-{channel}"):
                self.start_service(name, ["alimi_delivery", "--channel", channel])

    def replica_names(self, service: str) -> list[str]:
        """The process names of ``service``'s replicas: its own name, then ``.2``, ``.3``..."""
        count = max(1, self.replicas.get(service, 1))
        return [service, *(f"{service}.{i}" for i in range(2, count + 1))]

    def seed_api_keys(self) -> None:
        """Create the fixed local keys (``LOCAL_KEYS``) unless they exist."""
        assert self.mongo_url is not None

        async def seed() -> None:
            store = Store(self.mongo_url or "", self.mongo_db)
            try:
                for key_id, (secret, scopes) in LOCAL_KEYS.items():
                    await api_keys.ensure(
                        store, key_id=key_id, secret=secret, name=f"{key_id} (local)", scopes=scopes
                    )
            finally:
                await store.close()

        asyncio.run(seed())

    def api_key(self, key_id: str) -> str:
        """The token of one of the ``LOCAL_KEYS``: ``operator``, ``approver`` or ``admin``."""
        return f"{api_keys.PREFIX}local{key_id}.{LOCAL_KEYS['local' + key_id][0]}"

    def approve_kakao_templates(self) -> None:
        """Register Alimi's AlimTalk templates with the sandbox, as one would with the provider."""
        request = urllib.request.Request(
            f"{self.sandbox_url}/_sandbox/kakao/templates",
            data=json.dumps(templates.kakao_templates()).encode(),
            headers={"Content-Type": "application/json"},
            method="PUT",
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as resp:
                resp.read()
        except OSError as exc:
            raise StackError(
                f"could not register the Kakao templates with the sandbox: {exc}"
            ) from exc

    def restart(self, name: str) -> Process:
        old = self.processes[name]
        args = old.popen.args
        assert isinstance(args, list)
        return self.start_service(
            name, [str(a) for a in args[2:]], env=self.env_overrides.get(name)
        )

    def kill(self, name: str) -> int:
        """``kill -9`` the process ``name`` and wait for it; returns its exit code (-9)."""
        return self.processes[name].kill()

    def start_again(self, name: str) -> Process:
        """Start ``name`` again, as before, after it died or was stopped."""
        if self.processes[name].running:
            raise StackError(f"{name} is still running; kill or stop it first")
        return self.restart(name)

    def stop_mongo(self, *, kill: bool = False) -> int:
        """Stop the SecantusDB this stack started (SIGTERM, or SIGKILL if ``kill``);
        :meth:`restart_mongo` starts it again. Returns its exit code."""
        if self.mongo_process is None:
            raise StackError("this stack did not start SecantusDB (start_mongo())")
        if kill:
            return self.mongo_process.kill()
        code = self.mongo_process.stop()
        assert code is not None
        return code

    def restart_mongo(self, *, kill: bool = False) -> None:
        """Start the SecantusDB this stack started again, on the same port and storage
        path, so the services' URL stays valid; stops it first if it is running."""
        old = self.mongo_process
        if old is None:
            raise StackError("this stack did not start SecantusDB (start_mongo())")
        if old.running:
            self.stop_mongo(kill=kill)
        args = old.popen.args
        assert isinstance(args, list)
        argv = [str(a) for a in args]
        port = int(argv[argv.index("--port") + 1])
        self.mongo_process = self._spawn("mongo", argv, env=os.environ.copy(), ops_url=None)
        if not wait_for_port("127.0.0.1", port, timeout_s=60):
            raise StackError(
                f"SecantusDB did not start again on port {port}; see {self.mongo_process.log_path}"
            )

    def stop_all(self) -> None:
        for proc in reversed(list(self.processes.values())):
            proc.stop()
        self.processes.clear()
        if self.mongo_process is not None:
            self.mongo_process.stop()
            self.mongo_process = None

    def _spawn(
        self, name: str, argv: list[str], *, env: dict[str, str], ops_url: str | None
    ) -> Process:
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self.echo_logs:
            popen = subprocess.Popen(
                argv,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            assert popen.stdout is not None
            threading.Thread(
                target=pump, args=(popen.stdout, f"{name:>13} |", sys.stdout), daemon=True
            ).start()
            return Process(name, popen, ops_url)
        log_path = self.workdir / f"{name}.log"
        with open(log_path, "ab") as log_file:
            popen = subprocess.Popen(
                argv, env=env, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True
            )
        return Process(name, popen, ops_url, log_path)


@contextlib.contextmanager
def running(stack: Stack) -> Iterator[Stack]:
    try:
        stack.start_all()
        yield stack
    finally:
        stack.stop_all()
