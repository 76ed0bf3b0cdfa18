"""Alimi on a three-node RabbitMQ cluster while its nodes stop and start.

Needs the local cluster of ``make cluster`` (``.ci/rabbitmq-cluster``: nodes
alimi-c1..c3 on 127.0.0.1:5681-5683); ``make chaos-cluster`` starts it, runs these
and stops it. The default run leaves them out (marker ``cluster``).

The services get the three nodes' URLs in ``ALIMI_AMQP_URL`` and declare quorum
queues (``ALIMI_QUORUM_QUEUES=true``), retry and dead-letter queues included. A
node is stopped the way an operator or a crash takes it away: ``rabbitmqctl stop``
ends its Erlang VM, and every connection to it goes with it.
"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Awaitable, Callable

import aiohttp
import pytest
from harness import Run, StartStack, load_people, queue_depth

from alimi import broker, topology
from alimi.bus import Bus
from alimi.store import Store
from alimi_devstack import rabbitmq_answers
from rabbitmq_cli import CLUSTER_SCRIPT, broker_connections, ctl

pytestmark = pytest.mark.cluster

NODES = (1, 2, 3)
CLUSTER_URL = ",".join(f"amqp://guest:guest@127.0.0.1:{5680 + n}/" for n in NODES)
CONNECTED = ("intake", "segmenter", "delivery-sms", "delivery-kakao", "delivery-slack")

ON_THE_CLUSTER = {
    "ALIMI_QUORUM_QUEUES": "true",
    # 10,000 people at 150 a second: the notice outlasts a node's stop and start.
    "ALIMI_SMS_RECIPIENTS_PER_S": "150",
    # A batch whose connection went mid-write comes back while its claims are held: its
    # worker's heartbeat (with the production lease) and short retry steps settle it in
    # seconds, not after the five-minute step.
    "ALIMI_PROVIDER_TIMEOUT_S": "2",
    "ALIMI_RETRY_DELAYS_S": "0.5,1,2",
}


@pytest.fixture(scope="module", autouse=True)
def _cluster_up() -> None:
    for n in NODES:
        if not rabbitmq_answers(f"amqp://guest:guest@127.0.0.1:{5680 + n}/"):
            pytest.fail(
                f"node alimi-c{n} of the local RabbitMQ cluster does not answer on "
                f"127.0.0.1:{5680 + n}: start the cluster with `make cluster`",
                pytrace=False,
            )


@pytest.fixture
def amqp_url() -> str:
    """Every process of the test's stack (and its clean-up) gets the cluster's node list."""
    return CLUSTER_URL


def cluster(command: str, node: int) -> None:
    """``.ci/rabbitmq-cluster stop-node|start-node N``."""
    subprocess.run(["bash", str(CLUSTER_SCRIPT), command, str(node)], check=True, timeout=180)


def leader_of(namespace: str, queue: str, *, asking: int) -> int:
    """The node (1-3) whose member of the quorum queue ``queue`` leads it."""
    listed = ctl("--silent", "list_queues", "name", "leader", cluster_node=asking)
    for line in listed.splitlines():
        name, _, leader = line.partition("\t")
        if name == f"{namespace}.{queue}":
            return int(leader.split("@")[0].removeprefix("alimi-c"))
    raise AssertionError(f"{namespace}.{queue} is not on the cluster: {listed}")


async def until(predicate: Callable[[], Awaitable[object]], what: str, within_s: float) -> None:
    deadline = asyncio.get_running_loop().time() + within_s
    while not await predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.2)


@pytest.mark.timeout(600)  # about two minutes on a quiet machine; CI's runners share theirs
async def test_when_broker_nodes_stop_and_start_mid_notice__then_everyone_is_told_once(
    start_stack: StartStack, store: Store, http: aiohttp.ClientSession, namespace: str
) -> None:
    n = 10_000
    run = Run(start_stack(ON_THE_CLUSTER), store, http)
    people = await load_people(store, n)
    sms = topology.delivery_queue("sms")
    leader = leader_of(namespace, sms, asking=1)
    notice = await run.post_notice()

    async def told(share: float) -> bool:
        return await run.sent_by() >= n * share

    stopped = []
    lost = 0  # connections on the nodes stopped: each must come back
    try:
        await run.until(lambda: told(0.1), "a tenth of the people told")
        lost += len(connections_on(namespace, leader))
        cluster("stop-node", leader)
        stopped.append(leader)
        await run.assert_under_way(notice, f"node {leader}, leader of {sms}, stopped")
        await run.until(lambda: told(0.3), "sending to go on without that node", within_s=120)
        cluster("start-node", leader)
        stopped.remove(leader)
        await run.assert_under_way(notice, f"node {leader} started again")
        # Then the node most of the services moved to.
        other = busiest_node(namespace, besides=leader)
        lost += len(connections_on(namespace, other))
        cluster("stop-node", other)
        stopped.append(other)
        await run.assert_under_way(notice, f"node {other} stopped")
        await run.wait_completed(notice, within_s=400)
    finally:
        for node in stopped:
            cluster("start-node", node)

    await run.assert_each_notified_once(notice, people)
    for queue in topology.ALL_QUEUES:
        assert await queue_depth(CLUSTER_URL, namespace, queue.name) == 0, queue.name
    reconnects = 0.0
    for process in CONNECTED:
        metrics = await run.metrics(process)
        assert run.stack.processes[process].running, process
        assert metrics.value("alimi_broker_reconnects_total") >= 1, process
        reconnects += metrics.value("alimi_broker_reconnects_total")
    assert reconnects >= lost >= len(CONNECTED) + 1


def connections_on(namespace: str, node: int) -> list[str]:
    """The stack's connections held by ``node`` (the node is in each connection's pid)."""
    asking = node % len(NODES) + 1
    return [
        pid
        for pid in broker_connections(namespace, cluster_node=asking)
        if f"alimi-c{node}@" in pid
    ]


def busiest_node(namespace: str, *, besides: int) -> int:
    return max((n for n in NODES if n != besides), key=lambda n: len(connections_on(namespace, n)))


async def test_when_broker_nodes_restart_again_and_again__then_one_connection_stays(
    namespace: str,
) -> None:
    bus = Bus(CLUSTER_URL, namespace, quorum_queues=True)
    await bus.connect()
    try:
        for _ in range(3):
            assert bus.connection is not None
            connected_to = int(broker.node_name(bus.connection.url).split(":")[1]) - 5680
            asking = connected_to % len(NODES) + 1
            before = sum_reconnects()
            cluster("stop-node", connected_to)
            await until(lambda: _connected(bus), "the bus to connect to another node", 60)
            cluster("start-node", connected_to)

            async def one_connection(asking: int = asking) -> bool:
                return len(broker_connections(namespace, cluster_node=asking)) == 1

            await until(one_connection, "a single connection from this process", 60)
            assert sum_reconnects() == before + 1
            await bus.publish(
                topology.DELIVERY, "sms", b"{}", message_id="after-restart"
            )  # and it works
    finally:
        channel = await bus.channel(prefetch=1)
        await topology.delete(channel, bus.names)
        await bus.close()
    assert broker_connections(namespace, cluster_node=1) == []


async def _connected(bus: Bus) -> bool:
    return bus.connection is not None and bus.connection.connected.is_set() and bus.is_connected


def sum_reconnects() -> float:
    return sum(
        sample.value
        for family in broker.RECONNECTS.collect()
        for sample in family.samples
        if sample.name.endswith("_total")
    )
