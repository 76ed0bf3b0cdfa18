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
  the message back on the queue after a short pause. On :meth:`Consumer.stop`
  it stops taking messages, lets in-flight ones finish up to a grace period,
  and leaves the rest unacked for the broker to redeliver.
"""

from __future__ import annotations

import asyncio
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

from alimi import broker, topology
from alimi.messages import InvalidMessage, parse
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


REQUEUE_PAUSE_S = 1.0


class Bus:
    def __init__(self, url: str, namespace: str, *, quorum_queues: bool = False) -> None:
        self.url = url
        self.names = topology.Names(namespace)
        self.quorum_queues = quorum_queues
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
        await self._exchanges[exchange].publish(message, routing_key=routing_key, timeout=30)
        PUBLISHED.labels(exchange).inc()

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
    ) -> None:
        self.bus = bus
        self.queue_name = queue
        self.message_type = message_type
        self.handler = handler
        self.prefetch = prefetch
        self._channel: AbstractChannel | None = None
        self._tag: str | None = None
        self._queue: aio_pika.abc.AbstractQueue | None = None
        self._in_flight: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._channel = await self.bus.channel(self.prefetch)
        self._queue = await self._channel.get_queue(self.bus.names(self.queue_name))
        self._tag = await self._queue.consume(self._on_message)
        log.info("consuming", extra={"queue": self.queue_name, "prefetch": self.prefetch})

    async def stop(self, grace_s: float) -> None:
        """Stop taking messages; let in-flight ones finish for up to ``grace_s``."""
        if self._queue is not None and self._tag is not None:
            try:
                await self._queue.cancel(self._tag)
            except Exception:  # the channel may already be gone; nothing to cancel then
                log.warning("cancel failed", extra={"queue": self.queue_name}, exc_info=True)
            self._tag = None
        pending = set(self._in_flight)
        if pending:
            log.info("draining", extra={"queue": self.queue_name, "in_flight": len(pending)})
            _done, not_done = await asyncio.wait(pending, timeout=grace_s)
            for task in not_done:
                task.cancel()
            if not_done:
                await asyncio.wait(not_done)
                log.warning(
                    "grace period over; unfinished messages go back to the queue",
                    extra={"queue": self.queue_name, "count": len(not_done)},
                )
        if self._channel is not None and not self._channel.is_closed:
            await self._channel.close()

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._in_flight.add(task)  # type: ignore[arg-type]
        try:
            await self._process(message)
        finally:
            self._in_flight.discard(task)  # type: ignore[arg-type]

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
            log.warning(
                "message will be retried",
                extra={
                    "queue": self.queue_name,
                    "message_id": message.message_id,
                    "reason": str(exc),
                },
            )
            await self._requeue_after_pause(message, "retry")
            return
        except asyncio.CancelledError:
            # Shutdown past the grace period: the broker redelivers it.
            await _quietly(message.reject(requeue=True))
            CONSUMED.labels(self.queue_name, "requeued").inc()
            raise
        except Exception:
            log.exception(
                "handler failed; message goes back to the queue",
                extra={"queue": self.queue_name, "message_id": message.message_id},
            )
            await self._requeue_after_pause(message, "requeued")
            return
        if not message.processed:
            await message.ack()
        CONSUMED.labels(self.queue_name, "done").inc()

    async def _requeue_after_pause(self, message: AbstractIncomingMessage, outcome: str) -> None:
        CONSUMED.labels(self.queue_name, outcome).inc()
        await asyncio.sleep(REQUEUE_PAUSE_S)
        await _quietly(message.reject(requeue=True))

    async def dead_letter(self, message: AbstractIncomingMessage, reason: str) -> None:
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
            headers={ERROR_HEADER: reason[:1000], "x-alimi-queue": self.queue_name},
        )
        await message.ack()
        CONSUMED.labels(self.queue_name, "dead_lettered").inc()


async def _quietly(op: Awaitable[object]) -> None:
    try:
        await op
    except Exception:  # the channel closed under us; the broker redelivers unacked messages
        log.warning("could not settle message", exc_info=True)
