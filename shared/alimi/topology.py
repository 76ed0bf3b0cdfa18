"""The RabbitMQ topology as data.

Every exchange and queue Alimi uses is described here once; :func:`declare`
creates them idempotently, so every service can call it at start-up. All names
carry the namespace prefix, so test runs and environments can share a broker.

    events (topic)    --notice.approved-->  segmenter
                      --notice.partition->  segmenter.partitions
    delivery (direct) --<channel>-------->  delivery.<channel>
    retry (direct)    --<channel>.<step>->  retry.<channel>.<step>  --expired--> delivery
    dead (direct)     --<queue name>----->  dead.<queue name>

A retry queue has no consumer: a message waits there for its own expiration
(set per message by the publisher: the step's delay with jitter) and then is
dead-lettered back to ``delivery`` under its channel's routing key. Retrying
never sleeps inside a consumer.

A consumer that cannot process a message (invalid body, unknown version), or
one that failed too often (:mod:`alimi.poison`), dead-letters it to ``dead``
with the reason in a header; each work queue also names ``dead`` as its
dead-letter exchange, so a rejected message lands there too instead of being
dropped. As quorum queues, work queues also get ``x-delivery-limit``
(:data:`alimi.poison.BROKER_DELIVERY_LIMIT`): a message whose consumer dies on
it every time is dead-lettered by the broker.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import aiormq

from alimi.messages import CHANNELS
from alimi.poison import BROKER_DELIVERY_LIMIT

ExchangeKind = Literal["direct", "topic", "fanout"]

EVENTS = "events"
DELIVERY = "delivery"
RETRY = "retry"
DEAD = "dead"

# Channels whose batches are retried through delay queues, and how many steps.
RETRIED_CHANNELS = ("sms", "kakao")
RETRY_STEPS = 3

NOTICE_APPROVED = "notice.approved"
NOTICE_PARTITION = "notice.partition"
SEGMENTER_QUEUE = "segmenter"
PARTITIONS_QUEUE = "segmenter.partitions"


def delivery_queue(channel: str) -> str:
    return f"delivery.{channel}"


def dead_queue(queue: str) -> str:
    return f"dead.{queue}"


def retry_key(channel: str, step: int) -> str:
    return f"{channel}.{step}"


def retry_queue(channel: str, step: int) -> str:
    return f"retry.{retry_key(channel, step)}"


@dataclass(frozen=True)
class Exchange:
    name: str
    kind: ExchangeKind


@dataclass(frozen=True)
class Queue:
    name: str
    bindings: tuple[tuple[str, str], ...] = ()  # (exchange, routing key)
    dead_letters: bool = True  # reject -> DEAD exchange, routed by queue name
    # Expired messages go to (exchange, routing key) instead: the retry queues.
    expire_to: tuple[str, str] | None = None
    arguments: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)


EXCHANGES: tuple[Exchange, ...] = (
    Exchange(EVENTS, "topic"),
    Exchange(DELIVERY, "direct"),
    Exchange(RETRY, "direct"),
    Exchange(DEAD, "direct"),
)

WORK_QUEUES: tuple[Queue, ...] = (
    Queue(SEGMENTER_QUEUE, bindings=((EVENTS, NOTICE_APPROVED),)),
    Queue(PARTITIONS_QUEUE, bindings=((EVENTS, NOTICE_PARTITION),)),
    *(Queue(delivery_queue(ch), bindings=((DELIVERY, ch),)) for ch in CHANNELS),
)

DEAD_QUEUES: tuple[Queue, ...] = tuple(
    Queue(dead_queue(q.name), bindings=((DEAD, q.name),), dead_letters=False) for q in WORK_QUEUES
)

RETRY_QUEUES: tuple[Queue, ...] = tuple(
    Queue(
        retry_queue(ch, step),
        bindings=((RETRY, retry_key(ch, step)),),
        dead_letters=False,
        expire_to=(DELIVERY, ch),
    )
    for ch in RETRIED_CHANNELS
    for step in range(1, RETRY_STEPS + 1)
)

# Dead-letter queues first, so a work queue never points at nothing.
ALL_QUEUES: tuple[Queue, ...] = (*DEAD_QUEUES, *WORK_QUEUES, *RETRY_QUEUES)


class TopologyMismatch(Exception):
    """A queue exists with other arguments (say, its type): retrying cannot fix it."""


@dataclass(frozen=True)
class Names:
    """Turns logical names into the namespaced names on the broker."""

    namespace: str

    def __call__(self, logical: str) -> str:
        return f"{self.namespace}.{logical}"


def queue_arguments(queue: Queue, names: Names, *, quorum: bool) -> dict[str, Any]:
    args: dict[str, Any] = {"x-queue-type": "quorum" if quorum else "classic"}
    if queue.expire_to is not None:
        args["x-dead-letter-exchange"] = names(queue.expire_to[0])
        args["x-dead-letter-routing-key"] = queue.expire_to[1]
    elif queue.dead_letters:
        args["x-dead-letter-exchange"] = names(DEAD)
        args["x-dead-letter-routing-key"] = queue.name
        if quorum:  # a work queue: the broker's own limit, above the consumers'
            args["x-delivery-limit"] = BROKER_DELIVERY_LIMIT
    args.update(queue.arguments)
    return args


async def declare(channel: Any, names: Names, *, quorum: bool = False) -> None:
    """Declare every exchange and queue; safe to run any number of times.

    ``channel`` is an ``aio_pika`` channel. Dead-letter queues come first so a
    work queue never points at a dead-letter exchange with nothing behind it.
    """
    exchanges = {}
    for ex in EXCHANGES:
        exchanges[ex.name] = await channel.declare_exchange(names(ex.name), ex.kind, durable=True)
    for queue in ALL_QUEUES:
        try:
            declared = await channel.declare_queue(
                names(queue.name),
                durable=True,
                arguments=queue_arguments(queue, names, quorum=quorum),
            )
        except aiormq.exceptions.ChannelPreconditionFailed as exc:
            wanted = "quorum" if quorum else "classic"
            raise TopologyMismatch(
                f"queue {names(queue.name)} exists with other arguments than a {wanted} queue's "
                f"(the broker said: {exc}); RabbitMQ cannot change a queue's type or "
                "arguments (such as the x-delivery-limit quorum work queues have since "
                "this version), so ALIMI_QUORUM_QUEUES must match what the namespace was "
                "created with: drain and delete its queues, or use a new ALIMI_NAMESPACE"
            ) from exc
        for exchange, key in queue.bindings:
            await declared.bind(exchanges[exchange], routing_key=key)


async def delete(channel: Any, names: Names) -> None:
    """Remove every queue and exchange of a namespace (tests clean up with this)."""
    for queue in ALL_QUEUES:
        await channel.queue_delete(names(queue.name))
    for ex in EXCHANGES:
        await channel.exchange_delete(names(ex.name))
