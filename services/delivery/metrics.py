"""Every metric of the delivery service. Labels are bounded: channel, provider, outcome, step."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from alimi import states, topology

DELIVERIES = Counter(
    "alimi_deliveries_total", "Recipients handled, by outcome", ["channel", "provider", "outcome"]
)
DUPLICATES = Counter(
    "alimi_delivery_duplicates_skipped_total",
    "Recipients skipped because their receipt was already claimed or final",
    ["channel"],
)
FALLBACKS = Counter(
    "alimi_delivery_fallbacks_total",
    "People handed from one channel to the next in their chain",
    ["from_channel", "to_channel", "reason"],
)
RETRIED = Counter(
    "alimi_delivery_retries_total",
    "Recipients sent to a retry queue, by channel and step",
    ["channel", "step"],
)
DEAD_LETTERED = Counter(
    "alimi_delivery_dead_lettered_total",
    "Recipients dead-lettered after the last retry (their receipts failed)",
    ["channel"],
)
HALTED = Counter(
    "alimi_delivery_halted_total",
    "Recipients not sent to because their notice was halted",
    ["channel"],
)
IN_DOUBT = Counter(
    "alimi_delivery_in_doubt_total",
    "Receipts whose last attempt may have reached the provider, by what it said",
    ["channel", "answer"],
)
WITHHELD = Counter(
    "alimi_delivery_calls_withheld_total",
    "Recipients of provider calls not made: the worker's heartbeat or claim would have run "
    "out before the call's timeout (they are retried)",
    ["channel"],
)
APPROVAL_TO_ACCEPT = Histogram(
    "alimi_delivery_approval_to_accept_seconds",
    "From a notice's approval to the provider accepting one person's message",
    ["channel"],
    buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400),
)
PROVIDER_LATENCY = Histogram(
    "alimi_provider_request_seconds",
    "Provider API call latency",
    ["provider", "kind"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)

# Why Kakao hands a person to the next channel (bounded: it labels FALLBACKS).
KAKAO_FALLBACK_REASON = {"unreachable": "not_reachable", "rejected": "kakao_rejected"}


def declare(channel: str, provider: str) -> None:
    """Create a channel's series at zero, so the first failure after a start shows in rates."""
    for status in (states.SENT, states.FAILED, states.RETRYING, states.FELL_BACK, states.HALTED):
        DELIVERIES.labels(channel, provider, status)
    DUPLICATES.labels(channel)
    DEAD_LETTERED.labels(channel)
    HALTED.labels(channel)
    WITHHELD.labels(channel)
    for step in range(1, topology.RETRY_STEPS + 1):
        RETRIED.labels(channel, str(step))
    if channel == "kakao":
        for reason in KAKAO_FALLBACK_REASON.values():
            FALLBACKS.labels("kakao", "sms", reason)
