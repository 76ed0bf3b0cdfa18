"""The whole pipeline as real processes: intake, segmenter, delivery, sandbox.

Real RabbitMQ, the real MongoDB-wire server, real HTTP between delivery and the
sandbox SMS gateway. What the sandbox received is the ground truth.
"""

from __future__ import annotations

import json
from typing import Any

import aio_pika
import aiohttp
import pytest

from alimi import crypto, phone, topology
from alimi.store import Store
from alimi_devstack import Stack, eventually
from support import approve, operator_session, receipts_of

pytestmark = pytest.mark.e2e

AUDIENCE_TAG = "breach-2026-11"
STACK_KEYS = crypto.keyring(crypto.DEVELOPMENT_KEYS)  # the stack sets no ALIMI_PHONE_KEYS
N = 500


def _subjects() -> list[dict[str, Any]]:
    rows = [
        {
            "external_id": f"cust-{i:04d}",
            "name": f"고객{i}",
            "phone": f"010-5{i:03d}-{i:04d}",
            "tags": [AUDIENCE_TAG],
        }
        for i in range(N)
    ]
    # two accounts of one person: the same phone number, written differently
    rows[1]["phone"] = rows[0]["phone"].replace("010-", "+8210").replace("-", "")
    # one person outside the audience
    rows.append({"external_id": "outsider", "name": "외부인", "phone": "010-9999-0000"})
    return rows


async def _sandbox_messages(http: aiohttp.ClientSession, stack: Stack) -> list[dict[str, Any]]:
    async with http.get(f"{stack.sandbox_url}/_sandbox/sms/messages") as resp:
        return (await resp.json())["messages"]


async def _post_incident(http: aiohttp.ClientSession, stack: Stack) -> dict[str, Any]:
    async with http.post(f"{stack.intake_url}/v1/subjects", json=_subjects()) as resp:
        assert resp.status == 200, await resp.text()
    incident = {
        "title": "회원 정보 유출",
        "severity": "high",
        "discovered_at": "2026-11-28T09:00:00+09:00",
        "contact": "02-1588-0000",
        # SMS only, the operator's words alone: this file is about the pipeline
        # (dedupe, receipts, replays); tests/e2e/test_channels.py is about channels.
        "notice": {
            "body": "#{name}님, 개인정보 유출 사고를 알려드립니다: #{status_url}",
            "template": "short_notice",
            "channels": ["sms"],
        },
        "audience": {"filter": {"tags_any": [AUDIENCE_TAG]}},
    }
    async with http.post(f"{stack.intake_url}/v1/incidents", json=incident) as resp:
        assert resp.status == 201, await resp.text()
        created: dict[str, Any] = await resp.json()
    await approve(http, stack, created["notice_id"])
    return created


async def _incident(http: aiohttp.ClientSession, stack: Stack, incident_id: str) -> dict[str, Any]:
    async with http.get(f"{stack.intake_url}/v1/incidents/{incident_id}") as resp:
        assert resp.status == 200
        return await resp.json()


async def _wait_until_completed(
    http: aiohttp.ClientSession, stack: Stack, incident_id: str
) -> None:
    async def completed() -> bool:
        view = await _incident(http, stack, incident_id)
        return view["notices"][0]["state"] == "completed"

    await eventually(completed, 120, f"the notice of {incident_id} to complete")


async def test_when_an_incident_is_posted__then_each_distinct_phone_gets_one_sms_and_one_receipt(
    stack: Stack, store: Store
) -> None:
    async with operator_session(stack) as http:
        created = await _post_incident(http, stack)
        await _wait_until_completed(http, stack, created["incident_id"])
        messages = await _sandbox_messages(http, stack)

        async def all_reported() -> dict[str, Any] | None:
            # the sandbox reports each SMS as delivered to the receipts service
            view = await _incident(http, stack, created["incident_id"])
            return view if view["notices"][0]["counts"] == {"delivered": N - 1} else None

        view = await eventually(all_reported, 60, "delivery reports for every SMS")

    distinct_phones = N - 1  # cust-0000 and cust-0001 share a number
    numbers = [m["recipient_no"] for m in messages]
    assert len(numbers) == distinct_phones
    assert len(set(numbers)) == distinct_phones
    assert "01099990000" not in numbers
    assert all(m["body"].startswith("고객") and "님, 개인정보" in m["body"] for m in messages)
    assert all(created["status_url"] in m["body"] for m in messages)

    receipts = list((await receipts_of(store)).values())
    assert len(receipts) == distinct_phones
    assert {r["status"] for r in receipts} == {"delivered"}
    # One provider attempt each, then its delivery report.
    assert all([e["status"] for e in r["events"]] == ["sent", "delivered"] for r in receipts)
    assert all(r["provider_message_id"] for r in receipts)
    assert all("*" in r["destination"] for r in receipts)
    shared = [r for r in receipts if r["also_subject_ids"]]
    assert [(r["subject_id"], r["also_subject_ids"]) for r in shared] in (
        [("cust-0000", ["cust-0001"])],
        [("cust-0001", ["cust-0000"])],
    )
    keys = {m["grouping_key"] for m in messages}
    assert keys == {r["_id"] for r in receipts}

    notice = view["notices"][0]
    assert notice["state"] == "completed"
    assert notice["counts_by_channel"] == {"sms": {"delivered": distinct_phones}}
    assert notice["recipients"] == distinct_phones


async def test_when_batches_are_published_again__then_no_second_sms_and_no_second_receipt(
    stack: Stack, store: Store
) -> None:
    async with operator_session(stack) as http:
        created = await _post_incident(http, stack)
        await _wait_until_completed(http, stack, created["incident_id"])
        before = await _sandbox_messages(http, stack)

        # Rebuild the notice's batches from its receipts and publish them by hand.
        receipts = await store.receipts.find({}).sort("_id", 1).to_list()
        subjects = {s["_id"]: s for s in await store.subjects.find({}).to_list()}
        connection = await aio_pika.connect(stack.amqp_url)
        async with connection:
            channel = await connection.channel(publisher_confirms=True)
            exchange = await channel.get_exchange(f"{stack.namespace}.{topology.DELIVERY}")
            for start in range(0, len(receipts), 100):
                chunk = receipts[start : start + 100]
                batch = {
                    "kind": "delivery.batch",
                    "v": 1,
                    "batch_id": f"replay-{start}",
                    "notice_id": created["notice_id"],
                    "incident_id": created["incident_id"],
                    "channel": "sms",
                    "recipients": [
                        {
                            "subject_id": r["subject_id"],
                            "phone": phone.unseal(
                                STACK_KEYS, r["subject_id"], subjects[r["subject_id"]]["phone_enc"]
                            ),
                            "name": subjects[r["subject_id"]]["name"],
                        }
                        for r in chunk
                    ],
                }
                await exchange.publish(
                    aio_pika.Message(json.dumps(batch).encode(), delivery_mode=2), routing_key="sms"
                )

        async def queue_drained() -> bool:
            async with http.get(f"{stack.processes['delivery-sms'].ops_url}/metrics") as resp:
                text = await resp.text()
            skipped = [
                float(line.split()[-1])
                for line in text.splitlines()
                if line.startswith("alimi_delivery_duplicates_skipped_total{")
            ]
            return bool(skipped) and skipped[0] >= len(receipts)

        await eventually(queue_drained, 60, "the replayed batches to be consumed")
        after = await _sandbox_messages(http, stack)

    assert len(after) == len(before)
    assert await store.receipts.count_documents({}) == len(receipts)
    assert {r["attempts"] for r in (await receipts_of(store)).values()} == {1}


async def test_when_a_malformed_message_reaches_the_delivery_queue__then_it_is_dead_lettered_and_delivery_goes_on(  # noqa: E501
    stack: Stack, store: Store
) -> None:
    connection = await aio_pika.connect(stack.amqp_url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange(f"{stack.namespace}.{topology.DELIVERY}")
        await exchange.publish(
            aio_pika.Message(
                b'{"kind": "delivery.batch", "v": 1, "recipients": "oops"}',
                message_id="malformed-1",
                delivery_mode=2,
            ),
            routing_key="sms",
        )
        dead_queue = await channel.get_queue(
            f"{stack.namespace}.{topology.dead_queue(topology.delivery_queue('sms'))}"
        )

        async def dead_lettered() -> aio_pika.abc.AbstractIncomingMessage | None:
            return await dead_queue.get(fail=False)

        dead = await eventually(dead_lettered, 30, "the malformed message in the dead-letter queue")
        assert dead.message_id == "malformed-1"
        assert "x-alimi-error" in (dead.headers or {})
        await dead.ack()

    # the delivery worker is still alive and still delivers
    assert stack.processes["delivery-sms"].popen.poll() is None
    async with operator_session(stack) as http:
        created = await _post_incident(http, stack)
        await _wait_until_completed(http, stack, created["incident_id"])
    log = (stack.workdir / "delivery-sms.log").read_text()
    assert "message dead-lettered" in log
