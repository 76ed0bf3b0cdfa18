"""Delivery of one batch on the SMS channel: claim, send, record."""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from typing import Any, Literal

from prometheus_client import Counter, Histogram

from alimi import ids, states
from alimi.bus import RetryLater, Unprocessable
from alimi.messages import DeliveryBatch, Recipient
from alimi.store import Store
from alimi_delivery import receipts
from alimi_delivery.compose import message_kind
from alimi_delivery.notices import NoticeTemplates
from alimi_delivery.sms_gateway import PROVIDER, SmsGateway, SmsMessage, SmsResult

log = logging.getLogger("alimi.delivery")

DELIVERIES = Counter(
    "alimi_deliveries_total", "Recipients handled, by outcome", ["channel", "provider", "outcome"]
)
DUPLICATES = Counter(
    "alimi_delivery_duplicates_skipped_total",
    "Recipients skipped because their receipt was already claimed or final",
    ["channel"],
)
PROVIDER_LATENCY = Histogram(
    "alimi_provider_request_seconds",
    "Provider API call latency",
    ["provider", "kind"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)

STATUS_BY_OUTCOME = {"sent": states.SENT, "permanent": states.FAILED, "retry": receipts.RETRYING}


class SmsDelivery:
    channel = "sms"

    def __init__(self, store: Store, gateway: SmsGateway) -> None:
        self.store = store
        self.gateway = gateway
        self.templates = NoticeTemplates(store)

    async def handle(self, batch: DeliveryBatch, _message: Any = None) -> None:
        template = await self.templates.get(batch.notice_id)
        if template is None:
            raise Unprocessable(f"notice {batch.notice_id} does not exist")
        claimed = await receipts.claim(self.store, batch, PROVIDER)
        skipped = len(batch.recipients) - len(claimed)
        if skipped:
            DUPLICATES.labels(self.channel).inc(skipped)
            log.info(
                "recipients already handled; not sent again",
                extra={"batch_id": batch.batch_id, "notice_id": batch.notice_id, "count": skipped},
            )
        if not claimed:
            return
        groups: dict[Literal["SMS", "LMS"], list[Recipient]] = defaultdict(list)
        for r in claimed:
            groups[message_kind(template.text_for(r.name))].append(r)
        outcomes: list[dict[str, Any]] = []
        for kind, recipients in groups.items():
            messages = [
                SmsMessage(ids.receipt_id(batch.notice_id, r.subject_id), r.phone, {"name": r.name})
                for r in recipients
            ]
            started = time.perf_counter()
            results = await self.gateway.send(
                kind=kind, body=template.provider_body(), title=template.title, messages=messages
            )
            PROVIDER_LATENCY.labels(PROVIDER, kind).observe(time.perf_counter() - started)
            outcomes.extend(
                _outcome(r, res, kind) for r, res in zip(recipients, results, strict=True)
            )
        await receipts.record(self.store, batch.notice_id, outcomes)
        retry = 0
        for o in outcomes:
            DELIVERIES.labels(self.channel, PROVIDER, o["status"]).inc()
            retry += o["status"] == receipts.RETRYING
        log.info(
            "batch delivered",
            extra={
                "batch_id": batch.batch_id,
                "notice_id": batch.notice_id,
                "incident_id": batch.incident_id,
                "claimed": len(claimed),
                "retrying": retry,
            },
        )
        if retry:
            raise RetryLater(f"{retry} recipient(s) of {batch.batch_id} to be retried")


def _outcome(recipient: Recipient, result: SmsResult, kind: str) -> dict[str, Any]:
    return {
        "subject_id": recipient.subject_id,
        "status": STATUS_BY_OUTCOME[result.outcome],
        "message_id": result.message_id,
        "error_code": result.error_code,
        "error": result.error,
        "message_type": kind,
    }
