"""Asynchronous, HMAC-signed delivery reports, posted in batches to a webhook.

A provider reports delivery some time after it accepted a message. The gateways
hand each accepted message to the Reporter as one small tuple; a background task
posts them after ``delay_ms`` in chunks of up to 1,000, signed as the receipts
service expects (:mod:`alimi.report_signature`). The send API only appends to a queue, so reporting
never slows it down.

The queue's memory is bounded: up to ``max_in_memory`` pending reports per
channel (about 120 bytes each) are held in a deque; beyond that, new ones are
appended to a spool file and read back, in order, as the deque drains — as a
real provider keeps its report queue on disk when the receiver is slow or
down.
"""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import tempfile
import time
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import aiohttp

from alimi import report_signature
from alimi.ids import provider_message_id

log = logging.getLogger("alimi.sandbox")

MAX_REPORTS_PER_POST = 1000
MAX_IN_MEMORY = 100_000  # pending reports per channel held in memory; the rest are spooled
# Reports due within this many seconds of the first due one join its batch.
LINGER_SECONDS = 0.05
NOT_RETRIED = frozenset({401, 422})


class Channel(StrEnum):
    SMS = "sms"
    KAKAO = "kakao"


# (resultCode, status, resultMessage) per channel and "undelivered?"
OUTCOMES: Mapping[tuple[Channel, bool], tuple[str, str, str]] = {
    (Channel.SMS, False): ("1000", "DELIVERED", "Delivered"),
    (Channel.SMS, True): ("3015", "UNDELIVERED", "Undelivered: the handset could not be reached"),
    (Channel.KAKAO, False): ("1000", "DELIVERED", "Delivered"),
    (Channel.KAKAO, True): ("3016", "UNDELIVERED", "Undelivered: the message was not read"),
}

# One accepted message: request id, recipientSeq, grouping key, recipient number, undelivered?
Accepted = tuple[str, int, str | None, str, bool]
# The same with its due time (time.monotonic()) in front; one float shared per request.
Pending = tuple[float, str, int, str | None, str, bool]


def report_body(channel: Channel, batch: Iterable[Pending], delivered_at: str) -> bytes:
    """The JSON body ``{"reports": [...]}`` for one batch."""
    reports = []
    for _, request_id, seq, grouping_key, recipient_no, undelivered in batch:
        code, status, message = OUTCOMES[channel, bool(undelivered)]
        reports.append(
            {
                "messageId": provider_message_id(request_id, seq),
                "recipientGroupingKey": grouping_key,
                "recipientNo": recipient_no,
                "resultCode": code,
                "status": status,
                "resultMessage": message,
                "deliveredAt": delivered_at,
            }
        )
    return json.dumps({"reports": reports}, ensure_ascii=False).encode()


class Spooled:
    """One channel's pending reports: a bounded deque, and a spool file for the rest.

    Order is kept: once anything is spooled, new reports go to the spool too,
    until the deque has read it all back.
    """

    def __init__(self, folder: str, name: str, limit: int) -> None:
        self.memory: deque[Pending] = deque()
        self.limit = limit
        self._path = f"{folder}/{name}.spool"
        self._file = open(self._path, "w+", encoding="utf-8")  # closed by close()
        self._read_at = 0
        self.spooled = 0

    def __len__(self) -> int:
        return len(self.memory) + self.spooled

    def extend(self, items: Iterable[Pending]) -> None:
        for item in items:
            if self.spooled or len(self.memory) >= self.limit:
                self._file.write(json.dumps(item, ensure_ascii=False) + "\n")
                self.spooled += 1
            else:
                self.memory.append(item)

    def refill(self) -> None:
        """Read spooled reports back while the deque is under half its limit."""
        if not self.spooled or len(self.memory) > self.limit // 2:
            return
        self._file.flush()
        self._file.seek(self._read_at)
        while self.spooled and len(self.memory) < self.limit:
            line = self._file.readline()
            if not line:
                break
            self.memory.append(tuple(json.loads(line)))  # type: ignore[arg-type]
            self.spooled -= 1
        self._read_at = self._file.tell()
        self._file.seek(0, 2)  # writes go on at the end
        if not self.spooled:  # all read back: start the file again
            self._file.seek(0)
            self._file.truncate()
            self._read_at = 0

    def close(self) -> None:
        self._file.close()


@dataclass(slots=True)
class ReportStats:
    """Counts of reports (not requests): ``retried`` counts each report sent again."""

    sent: int = 0
    failed: int = 0  # refused with 401/422, not retried
    retried: int = 0
    dropped: int = 0  # given up after the last retry


class Reporter:
    """Collects accepted messages and posts their delivery reports in the background."""

    def __init__(
        self,
        *,
        urls: Mapping[Channel, str | None],
        secret: str,
        delay_ms: float,
        retry_delays: Sequence[float] = (0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0, 60.0, 60.0),
        concurrency: int = 4,
        timeout: float = 30.0,
        max_in_memory: int = MAX_IN_MEMORY,
    ) -> None:
        self._urls = {channel: url for channel, url in urls.items() if url}
        self._secret = secret
        self._delay = delay_ms / 1000
        self._retry_delays = tuple(retry_delays)
        self._concurrency = concurrency
        self._timeout = timeout
        self._spool_dir = tempfile.mkdtemp(prefix="alimi-sandbox-reports-")
        self._queues: dict[Channel, Spooled] = {
            c: Spooled(self._spool_dir, c.value, max_in_memory) for c in self._urls
        }
        self.stats = ReportStats()
        self._session: aiohttp.ClientSession | None = None
        self._runner: asyncio.Task[None] | None = None
        self._posts: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._slots = asyncio.Semaphore(concurrency)

    def enabled(self, channel: Channel) -> bool:
        return channel in self._urls

    @property
    def pending(self) -> int:
        return sum(len(queue) for queue in self._queues.values())

    @property
    def in_memory(self) -> int:
        return sum(len(queue.memory) for queue in self._queues.values())

    def add(self, channel: Channel, accepted: Iterable[Accepted]) -> None:
        """Schedule reports for ``accepted`` messages; a no-op if the channel has no URL."""
        queue = self._queues.get(channel)
        if queue is None:
            return
        due = time.monotonic() + self._delay
        before = len(queue)
        queue.extend((due, *item) for item in accepted)
        if len(queue) > before:
            self._wake.set()

    def as_dict(self) -> dict[str, Any]:
        in_flight = len(self._posts)
        return asdict(self.stats) | {
            "pending": self.pending,
            "pending_in_memory": self.in_memory,
            "in_flight_batches": in_flight,
        }

    async def start(self) -> None:
        if not self._urls:
            return
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self._timeout))
        self._runner = asyncio.create_task(self._run(), name="sandbox-reports")

    async def stop(self) -> None:
        tasks = [*self._posts, *([self._runner] if self._runner else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self.pending:
            log.warning("sandbox stopping with %d delivery reports never sent", self.pending)
        for queue in self._queues.values():
            queue.close()
        shutil.rmtree(self._spool_dir, ignore_errors=True)

    async def _run(self) -> None:
        while True:
            for spool in self._queues.values():
                spool.refill()
            heads = [spool.memory[0][0] for spool in self._queues.values() if spool.memory]
            if not heads:
                self._wake.clear()
                await self._wake.wait()
                continue
            wait = min(heads) - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
                continue
            for channel, spooled in self._queues.items():
                due = spooled.memory
                horizon = time.monotonic() + LINGER_SECONDS
                while due and due[0][0] <= horizon:
                    await self._slots.acquire()  # bounds the posts in flight
                    batch: list[Pending] = []
                    while due and len(batch) < MAX_REPORTS_PER_POST and due[0][0] <= horizon:
                        batch.append(due.popleft())
                    spooled.refill()
                    task = asyncio.create_task(self._post(channel, batch))
                    self._posts.add(task)
                    task.add_done_callback(self._posts.discard)

    async def _post(self, channel: Channel, batch: list[Pending]) -> None:
        try:
            await self._post_with_retries(channel, batch)
        finally:
            self._slots.release()

    async def _post_with_retries(self, channel: Channel, batch: list[Pending]) -> None:
        assert self._session is not None
        url = self._urls[channel]
        delivered_at = datetime.now(UTC).isoformat(timespec="milliseconds")
        body = report_body(channel, batch, delivered_at)
        count = len(batch)
        outcome = ""
        for attempt in range(len(self._retry_delays) + 1):
            if attempt:
                self.stats.retried += count
                await asyncio.sleep(self._retry_delays[attempt - 1])
            # Signed again at each attempt: the timestamp is the attempt's own.
            headers = {
                "Content-Type": "application/json",
                **report_signature.headers(self._secret.encode(), body),
            }
            try:
                async with self._session.post(url, data=body, headers=headers) as response:
                    await response.read()
                    status = response.status
            except (aiohttp.ClientError, TimeoutError) as error:
                outcome = f"{type(error).__name__}: {error}"
                continue
            if 200 <= status < 300:
                self.stats.sent += count
                return
            if status in NOT_RETRIED:
                self.stats.failed += count
                log.warning(
                    "%s delivery report batch of %d refused with HTTP %d; not retried",
                    channel,
                    count,
                    status,
                )
                return
            outcome = f"HTTP {status}"
        self.stats.dropped += count
        log.warning(
            "dropped a %s delivery report batch of %d after %d attempts (last: %s)",
            channel,
            count,
            len(self._retry_delays) + 1,
            outcome,
        )
