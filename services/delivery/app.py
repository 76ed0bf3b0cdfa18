"""The delivery process for one channel: ``sms``, ``kakao`` or ``slack``."""

from __future__ import annotations

from typing import Any

import aiohttp
from aio_pika.abc import AbstractIncomingMessage

from alimi import topology
from alimi.counters import Shards
from alimi.messages import DeliveryBatch, StaffUpdate
from alimi.store import ATTEMPTS, HEARTBEATS, NOTICE_COUNTS, RECEIPTS
from alimi.worker import WorkerRuntime
from alimi_delivery.guard import ProviderGuard
from alimi_delivery.heartbeat import Heartbeat
from alimi_delivery.kakao_client import PROVIDER as KAKAO_PROVIDER
from alimi_delivery.kakao_client import KakaoClient
from alimi_delivery.kakao_delivery import KakaoDelivery
from alimi_delivery.retries import RetryPolicy
from alimi_delivery.service import ChannelDelivery
from alimi_delivery.settings import DeliverySettings
from alimi_delivery.slack_staff import StaffNotifier, build_client
from alimi_delivery.sms_client import PROVIDER as SMS_PROVIDER
from alimi_delivery.sms_client import SmsClient
from alimi_delivery.sms_delivery import SmsDelivery

SUPPORTED_CHANNELS = ("sms", "kakao", "slack")


class DeliveryProcess:
    def __init__(self, settings: DeliverySettings, channel: str) -> None:
        if channel not in SUPPORTED_CHANNELS:
            raise ValueError(
                f"unsupported channel {channel!r}; supported: {', '.join(SUPPORTED_CHANNELS)}"
            )
        self.settings = settings
        self.channel = channel
        self.runtime = WorkerRuntime(
            settings,
            owned_collections=(RECEIPTS, ATTEMPTS, NOTICE_COUNTS, HEARTBEATS),
            grace_s=settings.drain_grace_s,
        )
        # Claims name this process; its beats tell other workers it is alive.
        self.heartbeat = Heartbeat(
            self.runtime.store,
            f"delivery-{channel}",
            every_s=settings.heartbeat_s,
            call_s=settings.provider_timeout_s,
        )
        if channel != "slack":
            self.runtime.loop(self.heartbeat.run)
        self.session: aiohttp.ClientSession | None = None
        self.handler: ChannelDelivery[Any] | StaffNotifier | None = None
        self.runtime.consume(
            topology.delivery_queue(channel),
            StaffUpdate if channel == "slack" else DeliveryBatch,
            self._handle,
            prefetch=settings.prefetch,
        )

    async def _handle(self, message: Any, incoming: AbstractIncomingMessage) -> None:
        assert self.handler is not None
        await self.handler.handle(message, incoming)

    async def start(self) -> None:
        s = self.settings
        if self.channel == "slack":
            self.handler = StaffNotifier(
                self.runtime.store,
                build_client(
                    base_url=s.slack_api_url,
                    token=s.slack_token.get_secret_value(),
                    max_rate_limit_retries=s.slack_max_rate_limit_retries,
                    timeout_s=s.provider_timeout_s,
                ),
                default_channel=s.slack_default_channel,
            )
        else:
            self.session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=s.prefetch * 2, keepalive_timeout=30)
            )
            self.handler = self._channel_delivery(self.session)
        await self.runtime.start()

    def _channel_delivery(self, session: aiohttp.ClientSession) -> ChannelDelivery[Any]:
        s = self.settings
        common: dict[str, Any] = {
            "retry": RetryPolicy(s.retry_delays, s.retry_jitter),
            "claim_lease_s": s.claim_lease_s,
            "heartbeat": self.heartbeat,
            # one counter shard per batch in flight: transactions never wait on each other
            "shards": Shards.for_process(f"delivery-{self.channel}", slots=s.prefetch),
        }
        if self.channel == "kakao":
            kakao = KakaoClient(
                session,
                base_url=s.kakao_api_url,
                app_key=s.kakao_app_key,
                secret_key=s.kakao_secret_key.get_secret_value(),
                sender=s.kakao_sender_key.get_secret_value(),
                timeout_s=s.provider_timeout_s,
            )
            guard = self._guard(KAKAO_PROVIDER, s.kakao_requests_per_s, s.kakao_recipients_per_s)
            return KakaoDelivery(self.runtime.store, self.runtime.bus, kakao, guard=guard, **common)
        sms = SmsClient(
            session,
            base_url=s.sms_api_url,
            app_key=s.sms_app_key,
            secret_key=s.sms_secret_key.get_secret_value(),
            sender=s.sms_sender_no,
            timeout_s=s.provider_timeout_s,
        )
        guard = self._guard(SMS_PROVIDER, s.sms_requests_per_s, s.sms_recipients_per_s)
        return SmsDelivery(self.runtime.store, self.runtime.bus, sms, guard=guard, **common)

    def _guard(
        self, provider: str, requests_per_s: float, recipients_per_s: float
    ) -> ProviderGuard:
        return ProviderGuard(
            provider,
            requests_per_s=requests_per_s,
            recipients_per_s=recipients_per_s,
            breaker_failures=self.settings.breaker_failures,
            breaker_cooldown_s=self.settings.breaker_cooldown_s,
        )

    async def stop(self) -> None:
        await self.runtime.stop()
        if self.session is not None:
            await self.session.close()
