"""RabbitMQ access: one robust connection, confirmed publishing, a consumer base.

* :class:`Bus` owns the connection (``connect_robust`` reconnects and restores
  consumers by itself; :mod:`alimi.broker` picks the node of a cluster it
  connects to and fails over) and a publisher channel with publisher confirms: a
  ``publish`` returns only once the broker has taken responsibility for the
  message, and an unroutable message raises instead of vanishing.
* :class:`Consumer` reads one queue with manual acks and a bounded prefetch,
  validates each body into its typed message, and hands it to a handler. An
  invalid message is dead-lettered with the reason and a log line and the
  consumer keeps going; a handler error (a database that is down, say) puts
  the message back on the queue after a pause, and a message that keeps
  failing ends in its dead-letter queue (:mod:`alimi.poison`). Each message is
  handled in its own task: a broker connection that closes cancels aio-pika's
  callback, not the handler, which finishes its writes (its ack then fails and
  the broker redelivers the message; a redelivery of a message this process is
  still handling waits for that handling first). On :meth:`Consumer.stop` it
  stops taking messages, lets in-flight ones finish up to a grace period, and
  leaves the rest unacked for the broker to redeliver; a broker that stalls holds
  the stop no longer than :data:`STOP_REPLY_TIMEOUT_S` per answer it owes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

import aio_pika
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractRobustConnection,
)
from prometheus_client import Counter

from alimi import broker, poison, topology
from alimi.messages import InvalidMessage, parse
from alimi.poison import PoisonPolicy
from alimi.process import cancel_and_wait
from alimi.settings import BaseSettings

log = logging.getLogger("alimi.bus")

CONSUMED = Counter(
    "alimi_bus_messages_consumed_total",
    "Messages taken from a queue, by outcome",
    ["queue", "outcome"],
)
PUBLISHED = Counter(
    "alimi_bus_messages_published_total", "Messages confirmed by the broker", ["exchange"]
)

ERROR_HEADER = "x-alimi-error"


class Unprocessable(Exception):
    """Raised by a handler for a valid-looking message that can never be processed
    (it refers to a notice that does not exist, say): the message is dead-lettered."""


class RetryLater(Exception):
    """Raised by a handler when the message should be tried again after a pause."""


class BrokerTimeout(ConnectionError):
    """The broker did not confirm a publish within ``ALIMI_AMQP_TIMEOUT_S``."""


REQUEUE_PAUSE_S = 1.0  # before a message whose failure is not its own is put back
# How long Consumer.stop waits for the broker to answer its cancel, and its channel's
# close: a broker that stalls must not hold a shutdown past its grace period.
STOP_REPLY_TIMEOUT_S = 5.0


class Bus:
    def __init__(
        self,
        url: str,
        namespace: str,
        *,
        quorum_queues: bool = False,
        publish_timeout_s: float = 30.0,
    ) -> None:
        self.url = url
        self.names = topology.Names(namespace)
        self.quorum_queues = quorum_queues
        self.publish_timeout_s = publish_timeout_s
        self.connection: AbstractRobustConnection | None = None
        self._link = broker.NodeLink(
            broker.node_urls(url), client_name=f"alimi:{self.names.namespace}"
        )
        self._publish_channel: AbstractChannel | None = None
        self._exchanges: dict[str, AbstractExchange] = {}

    @classmethod
    def from_settings(cls, settings: BaseSettings) -> Bus:
        """The bus a service's settings describe: broker, namespace and queue type."""
        return cls(
            settings.amqp_url.get_secret_value(),
            settings.namespace,
            quorum_queues=settings.quorum_queues,
            publish_timeout_s=settings.amqp_timeout_s,
        )

    async def connect(self) -> None:
        """Connect to the first broker node that answers and declare the topology.

        Safe to call again after a failure: a connection the topology could not
        be declared on is closed, never left reconnecting in the background.
        """
        self.connection = await self._link.open(self._set_up)

    async def _set_up(self, connection: AbstractRobustConnection) -> None:
        self._publish_channel = await connection.channel(
            publisher_confirms=True, on_return_raises=True
        )
        await topology.declare(self._publish_channel, self.names, quorum=self.quorum_queues)
        for ex in topology.EXCHANGES:
            self._exchanges[ex.name] = await self._publish_channel.get_exchange(self.names(ex.name))

    async def close(self) -> None:
        await self._link.close()
        self.connection = None

    @property
    def is_connected(self) -> bool:
        return (
            self.connection is not None
            and not self.connection.is_closed
            and self._publish_channel is not None
            and not self._publish_channel.is_closed
        )

    async def publish(
        self,
        exchange: str,
        routing_key: str,
        body: bytes,
        *,
        message_id: str,
        headers: dict[str, Any] | None = None,
        expiration_s: float | None = None,
    ) -> None:
        """Publish a persistent message and wait for the broker's confirm.

        ``expiration_s`` sets the message's own TTL (used for retry delays).
        """
        message = aio_pika.Message(
            body,
            message_id=message_id,
            content_type="application/json",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            headers=headers or {},
            expiration=expiration_s,
        )
        await self._confirmed(self._exchanges[exchange], message, routing_key, exchange)
        PUBLISHED.labels(exchange).inc()

    async def put_back(
        self, queue: str, body: bytes, *, message_id: str, headers: dict[str, Any]
    ) -> None:
        """Publish ``body`` straight to ``queue`` (a logical name), persistent and confirmed:
        a failed message's copy with its count (:mod:`alimi.poison`)."""
        assert self._publish_channel is not None, "connect() first"
        message = aio_pika.Message(
            body,
            message_id=message_id,
            content_type="application/json",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            headers=headers,
        )
        exchange = self._publish_channel.default_exchange
        await self._confirmed(exchange, message, self.names(queue), f"queue {queue}")

    async def _confirmed(
        self, exchange: AbstractExchange, message: aio_pika.Message, routing_key: str, what: str
    ) -> None:
        try:
            await exchange.publish(message, routing_key=routing_key, timeout=self.publish_timeout_s)
        except TimeoutError:
            raise BrokerTimeout(
                f"the broker did not confirm a message to {what} within "
                f"{self.publish_timeout_s:g} s (ALIMI_AMQP_TIMEOUT_S)"
            ) from None

    async def channel(self, prefetch: int) -> AbstractChannel:
        assert self.connection is not None, "connect() first"
        channel = await self.connection.channel()
        await channel.set_qos(prefetch_count=prefetch)
        return channel


M = TypeVar("M")
Handler = Callable[[M, AbstractIncomingMessage], Awaitable[None]]


class Consumer(Generic[M]):
    """Consume one logical queue, one typed message kind, with manual acks."""

    def __init__(
        self,
        bus: Bus,
        queue: str,
        message_type: type[M],
        handler: Handler[M],
        *,
        prefetch: int,
        poison: PoisonPolicy | None = None,
    ) -> None:
        self.bus = bus
        self.queue_name = queue
        self.message_type = message_type
        self.handler = handler
        self.prefetch = prefetch
        self.poison = poison or PoisonPolicy()
        self._channel: AbstractChannel | None = None
        self._tag: str | None = None
        self._queue: aio_pika.abc.AbstractQueue | None = None
        self._in_flight: set[asyncio.Task[None]] = set()
        # message id -> its handling here: a redelivery waits for the one still running
        self._handling: dict[str, asyncio.Task[None]] = {}
        self._stopping = asyncio.Event()

    async def start(self) -> None:
        self._channel = await self.bus.channel(self.prefetch)
        self._queue = await self._channel.get_queue(self.bus.names(self.queue_name))
        self._tag = await self._queue.consume(self._on_message)
        log.info("consuming", extra={"queue": self.queue_name, "prefetch": self.prefetch})

    async def stop(self, grace_s: float) -> None:
        """Stop taking messages; let in-flight ones finish until ``grace_s`` after the call.

        The broker's answers to the cancel and to the channel's close are waited for
        :data:`STOP_REPLY_TIMEOUT_S` each: against a broker that stalls, a stop ends
        within ``max(grace_s, STOP_REPLY_TIMEOUT_S) + STOP_REPLY_TIMEOUT_S``."""
        deadline = asyncio.get_running_loop().time() + grace_s
        self._stopping.set()  # failed messages waiting out a pause go back at once
        if self._queue is not None and self._tag is not None:
            try:
                await self._queue.cancel(self._tag, timeout=STOP_REPLY_TIMEOUT_S)
            except Exception:  # the channel may already be gone, or the broker stalls
                log.warning("cancel failed", extra={"queue": self.queue_name}, exc_info=True)
            self._tag = None
        pending = set(self._in_flight)
        if pending:
            log.info("draining", extra={"queue": self.queue_name, "in_flight": len(pending)})
            left = max(0.0, deadline - asyncio.get_running_loop().time())
            _done, not_done = await asyncio.wait(pending, timeout=left)
            if not_done:
                await cancel_and_wait(not_done)
                log.warning(
                    "grace period over; unfinished messages go back to the queue",
                    extra={"queue": self.queue_name, "count": len(not_done)},
                )
        if self._channel is not None and not self._channel.is_closed:
            try:
                async with asyncio.timeout(STOP_REPLY_TIMEOUT_S):
                    await self._channel.close()
            except TimeoutError:  # the connection's close ends it
                log.warning("the broker did not answer the close", extra={"queue": self.queue_name})

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        # aio-pika runs this callback in a task its channel cancels when it closes: the
        # handling runs in a task of its own, so a closed connection never cuts a write in
        # half. Only stop() cancels handlings (past the grace period).
        key = message.message_id or ""
        earlier = self._handling.get(key) if key else None
        if earlier is not None:
            await asyncio.wait({earlier})
        task = asyncio.create_task(self._process(message))
        self._in_flight.add(task)
        if key:
            self._handling[key] = task
        task.add_done_callback(lambda done: self._handled(key, done))
        with contextlib.suppress(Exception):  # logged once, by _handled
            await asyncio.shield(task)

    def _handled(self, key: str, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        if self._handling.get(key) is task:
            del self._handling[key]
        if not task.cancelled() and task.exception() is not None:
            log.error("message handling failed", exc_info=task.exception())

    async def _process(self, message: AbstractIncomingMessage) -> None:
        try:
            parsed = parse(message.body, self.message_type)  # type: ignore[type-var]
        except InvalidMessage as exc:
            await self.dead_letter(message, str(exc))
            return
        try:
            await self.handler(parsed, message)  # type: ignore[arg-type]
        except Unprocessable as exc:
            await self.dead_letter(message, str(exc))
            return
        except RetryLater as exc:
            await self._failed(message, exc, "retry")
            return
        except asyncio.CancelledError:
            # Shutdown past the grace period: the broker redelivers it.
            await _quietly(message.reject(requeue=True))
            CONSUMED.labels(self.queue_name, "requeued").inc()
            raise
        except Exception as exc:
            await self._failed(message, exc, "requeued")
            return
        if not message.processed:
            await _quietly(message.ack())
        CONSUMED.labels(self.queue_name, "done").inc()

    async def _failed(self, message: AbstractIncomingMessage, exc: Exception, outcome: str) -> None:
        """Put ``message`` back after a pause, counting the failure if it is the message's;
        dead-letter it once it has failed ``poison.limit`` times."""
        before = poison.failures_of(message.headers)
        blamed = poison.blames_the_message(exc)
        failures = before + 1 if blamed else before
        error = poison.describe(exc)
        where = {"queue": self.queue_name, "message_id": message.message_id, "failures": failures}
        if blamed and self.poison.exhausted(failures):
            log.error("message failed too often", extra={**where, "error": error})
            poison.POISON.labels(self.queue_name).inc()
            await self.dead_letter(
                message,
                f"failed {failures} times; last: {error}",
                headers=poison.dead_letter_headers(failures, error),
            )
            return
        pause = self.poison.pause(failures) if blamed else REQUEUE_PAUSE_S
        extra = {**where, "error": error, "pause_s": pause}
        if isinstance(exc, RetryLater):
            log.warning("message will be retried", extra=extra)
        else:
            log.error("handler failed; message goes back to the queue", extra=extra, exc_info=exc)
        CONSUMED.labels(self.queue_name, outcome).inc()
        with contextlib.suppress(TimeoutError):  # stop() ends the pause early
            await asyncio.wait_for(self._stopping.wait(), pause)
        await self._put_back(message, failures)

    async def _put_back(self, message: AbstractIncomingMessage, failures: int) -> None:
        """A copy with the count, then the ack; if the copy cannot be published, the message
        itself goes back (its count stays what it was)."""
        if message.channel.is_closed:  # the broker redelivers it already
            return
        try:
            await self.bus.put_back(
                self.queue_name,
                message.body,
                message_id=message.message_id or "",
                headers=poison.retry_headers(message.headers, failures),
            )
        except Exception:
            log.warning("could not put a copy back; requeued as it was", exc_info=True)
            await _quietly(message.reject(requeue=True))
            return
        await _quietly(message.ack())

    async def dead_letter(
        self,
        message: AbstractIncomingMessage,
        reason: str,
        *,
        headers: dict[str, str] | None = None,
    ) -> None:
        """Move ``message`` to this queue's dead-letter queue with ``reason``, then ack it."""
        log.error(
            "message dead-lettered",
            extra={"queue": self.queue_name, "reason": reason, "message_id": message.message_id},
        )
        await self.bus.publish(
            topology.DEAD,
            self.queue_name,
            message.body,
            message_id=message.message_id or "",
            headers={
                ERROR_HEADER: reason[:1000],
                "x-alimi-queue": self.queue_name,
                **(headers or {}),
            },
        )
        await message.ack()
        CONSUMED.labels(self.queue_name, "dead_lettered").inc()


async def _quietly(op: Awaitable[object]) -> None:
    try:
        await op
    except Exception:  # the channel closed under us; the broker redelivers unacked messages
        log.warning("could not settle message", exc_info=True)
