"""What the chaos tests share: people, notices, the ground truth, and the faults.

The ground truth of "exactly once" is the sandbox's SMS inbox (each accepted
message records its ``grouping_key``, the receipt id) together with the
receipts in MongoDB: every expected person is in the inbox exactly once,
nobody else is, and every receipt is final.

Faults are injected from outside the services, as an operator or the
infrastructure would: signals to the processes, ``rabbitmqctl
close_connection`` on the broker, ``configureFailPoint`` on the MongoDB-wire
server, and the sandbox's run-time fault settings.
"""

from __future__ import annotations

import asyncio
import json
import signal
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import aiohttp
from prometheus_client.parser import text_string_to_metric_families
from pymongo import AsyncMongoClient

from alimi import counters, crypto, ids, partitions, states
from alimi.store import Store
from alimi_devstack import Stack, eventually
from alimi_intake.models import SubjectIn
from alimi_intake.service import subject_document
from support import connect_any, receipts_of

T = TypeVar("T")

# The ``start_stack`` fixture: settings (env) in, a running stack out.
StartStack = Callable[..., Stack]

PHONE_HASH_KEY = "chaos-tests-phone-hash-key"
TAG = "breach-2026-11"

# What every chaos stack runs with. No delivery reports: ``sent`` is already
# final, and leaving out one report write per person keeps the big notices fast.
BASE_ENV = {
    "ALIMI_LOG_LEVEL": "INFO",
    "ALIMI_PHONE_HASH_KEY": PHONE_HASH_KEY,
    "SANDBOX_LATENCY_MS": "5",
    "SANDBOX_SMS_REPORT_URL": "",
    "SANDBOX_KAKAO_REPORT_URL": "",
}

# -- time to completion -------------------------------------------------------

# test name -> its notice's approval-to-completion time, for the suite's report
# (conftest's terminal summary): each fault's cost against the same notice without it.
COMPLETION_TIMES: dict[str, dict[str, Any]] = {}
# Set by conftest for the test being run: whose completion :meth:`Run.wait_completed` records.
current_test: list[str] = [""]


# -- people -------------------------------------------------------------------


def phone(i: int) -> str:
    return f"+821055{i:06d}"


# The stack sets no ALIMI_PHONE_KEYS: its services encrypt with the development key.
PHONE_KEYS = crypto.keyring(crypto.DEVELOPMENT_KEYS)


async def load_people(store: Store, n: int, *, tag: str = TAG, first: int = 0) -> list[str]:
    """Put ``n`` people with distinct phones in the directory, as intake's import
    writes them (``subject_document``); returns their subject ids.

    Straight into the store: the import API would take longer than the test.
    """
    now = datetime.now(UTC)
    key = PHONE_HASH_KEY.encode()
    docs = []
    for i in range(first, first + n):
        subject = SubjectIn(external_id=f"p{i:06d}", name=f"고객{i}", phone=phone(i), tags=[tag])
        doc = subject_document(subject, key, PHONE_KEYS)
        docs.append({**doc, "created_at": now, "updated_at": now})
    for start in range(0, len(docs), 5000):
        await store.subjects.insert_many(docs[start : start + 5000], ordered=False)
    return [d["_id"] for d in docs]


# -- driving the stack ----------------------------------------------------------


UNDER_WAY = (states.NOTICE_SEGMENTING, states.NOTICE_SENDING)


@dataclass(frozen=True)
class Notice:
    incident_id: str
    notice_id: str


@dataclass
class Run:
    """One stack, its database and an HTTP client: what a chaos test drives."""

    stack: Stack
    store: Store
    http: aiohttp.ClientSession

    def key(self, who: str) -> dict[str, str]:
        """The header of one of the stack's local keys: ``operator`` or ``approver``."""
        return {"Authorization": f"Bearer {self.stack.api_key(who)}"}

    async def post_notice(self, *, tag: str = TAG) -> Notice:
        """An SMS-only breach notice to everyone tagged ``tag``, posted and approved."""
        incident = {
            "title": "회원 정보 유출",
            "severity": "high",
            "discovered_at": "2026-11-28T09:00:00+09:00",
            "contact": "고객센터 1588-0000",
            "notice": {
                "body": "#{name}님, 회원 정보 유출을 알려드립니다: #{status_url}",
                "template": "short_notice",
                "channels": ["sms"],
            },
            "audience": {"filter": {"tags_any": [tag]}},
        }
        url = f"{self.stack.intake_url}/v1/incidents"
        async with self.http.post(url, json=incident, headers=self.key("operator")) as resp:
            assert resp.status == 201, await resp.text()
            created = await resp.json()
        notice = Notice(created["incident_id"], created["notice_id"])
        await self.notice_action(notice, "approve")
        return notice

    async def notice_action(self, notice: Notice, action: str) -> dict[str, Any]:
        """``POST /v1/notices/{id}/<action>`` with the approver's key (approve, replay, ...);
        the answer, or for a job (a replay) its result once it succeeded."""
        url = f"{self.stack.intake_url}/v1/notices/{notice.notice_id}/{action}"
        async with self.http.post(url, headers=self.key("approver")) as resp:
            assert resp.status in (200, 202), await resp.text()
            answer: dict[str, Any] = await resp.json()
        while resp.status == 202 and answer["state"] not in ("succeeded", "failed"):
            await asyncio.sleep(0.2)
            job_url = f"{self.stack.intake_url}{answer['url']}"
            async with self.http.get(job_url, headers=self.key("approver")) as read:
                answer = await read.json()
        if resp.status == 202:
            assert answer["state"] == "succeeded", answer
            result: dict[str, Any] = answer["result"]
            return result
        return answer

    async def incident(self, notice: Notice) -> dict[str, Any]:
        url = f"{self.stack.intake_url}/v1/incidents/{notice.incident_id}"
        async with self.http.get(url, headers=self.key("operator")) as resp:
            assert resp.status == 200, await resp.text()
            view: dict[str, Any] = await resp.json()
            return view

    async def wait_completed(self, notice: Notice, within_s: float = 240) -> dict[str, Any]:
        """The intake read-back once the notice is ``completed``.

        A quiet machine completes these notices in well under a minute; the
        wait is long because a loaded one (a shared CI runner, every process
        and the database on two cores) has taken over two minutes, and these
        tests are about what arrives, not how fast. It waits on the notice's
        state alone: the read-back counts every receipt, which on a big notice
        is work the database should spend on the services.
        """

        async def completed() -> bool:
            found = await self.store.notices.find_one({"_id": notice.notice_id}, {"state": 1})
            return found is not None and found["state"] == "completed"

        await eventually(completed, within_s, f"notice {notice.notice_id} to complete")
        view = await self.incident(notice)
        assert view["notices"][0]["state"] == "completed"
        await self._record_completion(notice, view["notices"][0]["people"])
        return view

    async def _record_completion(self, notice: Notice, people: int) -> None:
        found = await self.store.notices.find_one(
            {"_id": notice.notice_id}, {"approved_at": 1, "completed_at": 1}
        )
        assert found is not None
        seconds = (found["completed_at"] - found["approved_at"]).total_seconds()
        COMPLETION_TIMES[current_test[0]] = {"people": people, "seconds": round(seconds, 1)}

    async def count(self, notice: Notice, status: str) -> int:
        """People of ``notice`` in ``status``, from its counters; ``claimed`` (in flight: a
        receipt whose attempt is not written yet) is the receipts the counters do not hold."""
        counts = await counters.of_notice(self.store, notice.notice_id)
        if status != states.CLAIMED:
            return counts.count(status)
        receipts = await self.store.receipts.count_documents({"notice_id": notice.notice_id})
        return receipts - counts.total()

    async def settled_count(self, notice: Notice, status: str, *, every_s: float = 0.5) -> int:
        """:meth:`count` once it holds still: a bulk write a killed worker had sent is
        applied by the server one statement at a time, and may still be landing."""
        last = await self.count(notice, status)
        while True:
            await asyncio.sleep(every_s)
            now = await self.count(notice, status)
            if now == last:
                return now
            last = now

    async def published(self, notice: Notice) -> int:
        """Recipients the segmenter has published so far (saved with its checkpoints)."""
        found = await self.store.notices.find_one({"_id": notice.notice_id})
        if found is None:
            return 0
        resolved = await partitions.progress_of(self.store, [found])
        return resolved[notice.notice_id].recipients_published

    async def state(self, notice: Notice) -> str:
        found = await self.store.notices.find_one({"_id": notice.notice_id}, {"state": 1})
        assert found is not None
        return str(found["state"])

    async def assert_under_way(self, notice: Notice, fault: str) -> None:
        """The notice is still being sent: ``fault`` struck in its middle, not after it."""
        state = await self.state(notice)
        assert state in UNDER_WAY, f"the notice was {state} already when {fault}"

    async def freeze_mid_batch(
        self, notice: Notice, *, told: int, process: str = "delivery-sms"
    ) -> int:
        """Once ``told`` people are sent to, stop ``process`` (SIGSTOP) at a moment it
        holds claimed receipts: between a batch's claim and its record. Returns how
        many it holds; the caller kills, terminates or continues it."""
        proc = self.stack.processes[process]

        async def ready() -> bool:
            return await self.sent_by(process) >= told and await self.count(notice, "claimed") > 0

        while True:
            await self.until(ready, f"{told} people told and a batch in flight")
            proc.signal(signal.SIGSTOP)
            held = await self.count(notice, "claimed")
            if held:
                return held
            proc.signal(signal.SIGCONT)  # between two batches after all: try again

    async def sent_by(self, process: str = "delivery-sms") -> float:
        """People ``process`` has had accepted by the provider since it started (its metric)."""
        metrics = await self.metrics(process)
        return metrics.value("alimi_deliveries_total", outcome="sent")

    async def until(
        self, predicate: Callable[[], Awaitable[T | None]], what: str, within_s: float = 60
    ) -> T:
        """Poll faster than :func:`eventually`: the moments chaos aims at are short."""
        deadline = asyncio.get_running_loop().time() + within_s
        while True:
            last = await predicate()
            if last:
                return last
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"timed out waiting for {what}; last: {last}")
            await asyncio.sleep(0.05)

    async def sandbox(self, **changes: Any) -> dict[str, Any]:
        """Change the sandbox's behaviour at run time (``PUT /_sandbox/config``)."""
        url = f"{self.stack.sandbox_url}/_sandbox/config"
        async with self.http.put(url, json=changes) as resp:
            assert resp.status == 200, await resp.text()
            config: dict[str, Any] = await resp.json()
            return config

    async def sms_inbox(self) -> list[dict[str, Any]]:
        async with self.http.get(f"{self.stack.sandbox_url}/_sandbox/sms/messages") as resp:
            assert resp.status == 200, await resp.text()
            messages: list[dict[str, Any]] = (await resp.json())["messages"]
            return messages

    async def metrics(self, process: str) -> Metrics:
        """What ``process`` (e.g. ``delivery-sms``) serves on ``/metrics`` now."""
        ops_url = self.stack.processes[process].ops_url
        async with self.http.get(f"{ops_url}/metrics") as resp:
            assert resp.status == 200, await resp.text()
            return Metrics.parse(await resp.text())

    async def assert_each_notified_once(self, notice: Notice, subject_ids: list[str]) -> None:
        """The sandbox got exactly one message per person; every receipt is final."""
        expected = {ids.receipt_id(notice.notice_id, s) for s in subject_ids}
        inbox = [
            m for m in await self.sms_inbox() if m["grouping_key"].startswith(notice.notice_id)
        ]
        per_person = Counter(m["grouping_key"] for m in inbox)
        doubled = {k: n for k, n in per_person.items() if n > 1}
        missing = expected - per_person.keys()
        strangers = per_person.keys() - expected
        assert not doubled, f"{len(doubled)} people told more than once, e.g. {_some(doubled)}"
        assert not missing, f"{len(missing)} people never told, e.g. {_some(missing)}"
        assert not strangers, f"{len(strangers)} messages to people outside the audience"

        receipts = await receipts_of(self.store, notice.notice_id)
        assert {r["_id"] for r in receipts.values()} == expected
        statuses = Counter(r["status"] for r in receipts.values())
        assert set(statuses) <= states.FINAL_RECEIPT_STATES, f"not all final: {dict(statuses)}"
        assert statuses["sent"] + statuses["delivered"] == len(expected), dict(statuses)
        # The counters the read-back and staff see agree with the receipts themselves.
        counts = await counters.of_notice(self.store, notice.notice_id)
        assert counts.totals() == dict(statuses), (counts.totals(), dict(statuses))

    def log(self, process: str) -> str:
        path = self.stack.workdir / f"{process}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def log_lines(self, process: str, *, msg: str) -> list[dict[str, Any]]:
        """The JSON log lines of ``process`` whose ``msg`` is ``msg``."""
        found = []
        for line in self.log(process).splitlines():
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(entry, dict) and entry.get("msg") == msg:
                found.append(entry)
        return found


def _some(items: Any) -> list[Any]:
    return sorted(items)[:5]


@dataclass(frozen=True)
class Metrics:
    samples: tuple[tuple[str, tuple[tuple[str, str], ...], float], ...]

    @classmethod
    def parse(cls, text: str) -> Metrics:
        return cls(
            tuple(
                (s.name, tuple(sorted(s.labels.items())), s.value)
                for family in text_string_to_metric_families(text)
                for s in family.samples
            )
        )

    def value(self, name: str, **labels: str) -> float:
        """Sum of the samples of ``name`` whose labels include ``labels``."""
        wanted = set(labels.items())
        return sum(v for n, ls, v in self.samples if n == name and wanted <= set(ls))


# -- RabbitMQ ---------------------------------------------------------------------


async def queue_depth(amqp_url: str, namespace: str, queue: str) -> int:
    """Messages ready in ``queue`` (a logical name), by a passive declare."""
    connection = await connect_any(amqp_url)
    async with connection:
        channel = await connection.channel()
        declared = await channel.declare_queue(f"{namespace}.{queue}", passive=True)
        return declared.declaration_result.message_count or 0


# -- MongoDB ----------------------------------------------------------------------


async def fail_point(mongo_url: str, mode: Any, data: dict[str, Any] | None = None) -> None:
    """``configureFailPoint: failCommand`` on the server (it runs with test commands on)."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url)
    try:
        await client.admin.command(
            {"configureFailPoint": "failCommand", "mode": mode, "data": data or {}}
        )
    finally:
        await client.close()
