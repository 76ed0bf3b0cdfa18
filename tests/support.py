"""Helpers the tests share (importable as ``support``; fixtures live in the conftests)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp.test_utils import TestServer

from alimi.bus import Bus
from alimi.devstack import Stack
from alimi.messages import DeliveryBatch, parse
from alimi.store import Store
from alimi_delivery.guard import ProviderGuard
from alimi_delivery.kakao_gateway import PROVIDER as KAKAO_PROVIDER
from alimi_delivery.kakao_gateway import KakaoGateway
from alimi_delivery.service import KakaoDelivery, RetryPolicy, SmsDelivery
from alimi_delivery.sms_gateway import PROVIDER as SMS_PROVIDER
from alimi_delivery.sms_gateway import SmsGateway


@dataclass
class Deliveries:
    """Builds delivery handlers wired to the sandbox, the store and the bus of a test."""

    store: Store
    bus: Bus
    http: aiohttp.ClientSession
    sandbox: TestServer

    def sms(self, *, sender_no: str = "0215990000", **kw: Any) -> SmsDelivery:
        gateway = SmsGateway(
            self.http,
            base_url=str(self.sandbox.make_url("")),
            app_key="sandbox-app-key",
            secret_key="sandbox-secret",
            sender_no=sender_no,
            timeout_s=kw.pop("timeout_s", 5),
        )
        return SmsDelivery(self.store, self.bus, gateway, **self._common(SMS_PROVIDER, kw))

    def kakao(self, **kw: Any) -> KakaoDelivery:
        gateway = KakaoGateway(
            self.http,
            base_url=str(self.sandbox.make_url("")),
            app_key="sandbox-app-key",
            secret_key="sandbox-secret",
            sender_key="sandbox-sender-key",
            timeout_s=kw.pop("timeout_s", 5),
        )
        return KakaoDelivery(self.store, self.bus, gateway, **self._common(KAKAO_PROVIDER, kw))

    async def configure(self, **changes: Any) -> None:
        """Change the sandbox's behaviour (``PUT /_sandbox/config``)."""
        async with self.http.put(self.sandbox.make_url("/_sandbox/config"), json=changes) as resp:
            assert resp.status == 200, await resp.text()

    async def inbox(self, kind: str = "sms") -> list[dict[str, Any]]:
        """What the sandbox's ``kind`` provider (sms, kakao) accepted, in order."""
        async with self.http.get(self.sandbox.make_url(f"/_sandbox/{kind}/messages")) as resp:
            messages: list[dict[str, Any]] = (await resp.json())["messages"]
            return messages

    async def receipts(self) -> dict[str, dict[str, Any]]:
        """Every receipt, by subject id."""
        return {r["subject_id"]: r for r in await self.store.receipts.find({}).to_list()}

    @staticmethod
    def _common(provider: str, kw: dict[str, Any]) -> dict[str, Any]:
        guard = ProviderGuard(
            provider,
            requests_per_s=kw.pop("requests_per_s", 0),
            recipients_per_s=kw.pop("recipients_per_s", 0),
            breaker_failures=kw.pop("breaker_failures", 5),
            breaker_cooldown_s=kw.pop("breaker_cooldown_s", 30),
        )
        return {
            "guard": guard,
            "retry": RetryPolicy(kw.pop("delays_s", (5.0, 30.0, 300.0)), 0.0),
            "claim_lease_s": kw.pop("claim_lease_s", 60.0),
            **kw,
        }


async def take_batches(bus: Bus, queue: str) -> list[DeliveryBatch]:
    """Everything waiting in ``queue`` (a logical name), taken off it."""
    channel = await bus.channel(prefetch=100)
    declared = await channel.get_queue(bus.names(queue))
    found = []
    while (message := await declared.get(fail=False)) is not None:
        await message.ack()
        found.append(parse(message.body, DeliveryBatch))
    await channel.close()
    return found


@contextlib.asynccontextmanager
async def operator_session(stack: Stack) -> AsyncIterator[aiohttp.ClientSession]:
    """An HTTP session carrying the stack's local operator key."""
    headers = {"Authorization": f"Bearer {stack.api_key('operator')}"}
    async with aiohttp.ClientSession(headers=headers) as session:
        yield session


async def approve(http: aiohttp.ClientSession, stack: Stack, notice_id: str) -> None:
    """The second person's approval, with the stack's local approver key."""
    async with http.post(
        f"{stack.intake_url}/v1/notices/{notice_id}/approve",
        headers={"Authorization": f"Bearer {stack.api_key('approver')}"},
    ) as resp:
        assert resp.status == 200, await resp.text()
