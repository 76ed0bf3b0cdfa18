"""The delivery process for one channel."""

from __future__ import annotations

import aiohttp
from aio_pika.abc import AbstractIncomingMessage

from alimi import topology
from alimi.messages import DeliveryBatch
from alimi.store import RECEIPTS
from alimi.worker import WorkerRuntime
from alimi_delivery.service import SmsDelivery
from alimi_delivery.settings import DeliverySettings
from alimi_delivery.sms_gateway import SmsGateway

SUPPORTED_CHANNELS = ("sms",)


class DeliveryProcess:
    def __init__(self, settings: DeliverySettings, channel: str) -> None:
        if channel not in SUPPORTED_CHANNELS:
            raise ValueError(
                f"unsupported channel {channel!r}; supported: {', '.join(SUPPORTED_CHANNELS)}"
            )
        self.settings = settings
        self.channel = channel
        self.runtime = WorkerRuntime(
            settings, owned_collections=(RECEIPTS,), grace_s=settings.drain_grace_s
        )
        self.session: aiohttp.ClientSession | None = None
        self.runtime.consume(
            topology.delivery_queue(channel),
            DeliveryBatch,
            self._handle,
            prefetch=settings.prefetch,
        )
        self.delivery: SmsDelivery | None = None

    async def _handle(self, batch: DeliveryBatch, message: AbstractIncomingMessage) -> None:
        assert self.delivery is not None
        await self.delivery.handle(batch, message)

    async def start(self) -> None:
        s = self.settings
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=s.prefetch * 2, keepalive_timeout=30)
        )
        gateway = SmsGateway(
            self.session,
            base_url=s.sms_api_url,
            app_key=s.sms_app_key,
            secret_key=s.sms_secret_key.get_secret_value(),
            sender_no=s.sms_sender_no,
            timeout_s=s.provider_timeout_s,
        )
        self.delivery = SmsDelivery(self.runtime.store, gateway)
        await self.runtime.start()

    async def stop(self) -> None:
        await self.runtime.stop()
        if self.session is not None:
            await self.session.close()
