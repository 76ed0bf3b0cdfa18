"""The system gauges: notices by state, incidents in progress, queue depths."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from prometheus_client import REGISTRY

from alimi import topology
from alimi.bus import Bus
from alimi.store import Store
from alimi_segmenter.monitor import Monitor
from support import seed_receipts


def _value(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


async def test_when_an_incident_is_being_notified__then_its_deadline_and_share_are_gauged(
    store: Store, bus: Bus
) -> None:
    now = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
    await store.incidents.insert_one({"_id": "inc_m", "discovered_at": now - timedelta(hours=70)})
    await store.notices.insert_many(
        [
            {
                "_id": "ntc_m1",
                "incident_id": "inc_m",
                "seq": 1,
                "state": "sending",
                "progress": {"recipients_published": 3, "skipped_no_phone": 1},
            },
            {"_id": "ntc_old", "incident_id": "inc_m", "state": "completed"},
        ]
    )
    monitor = Monitor(store, bus)
    await monitor.check(now)
    assert _value("alimi_incident_receipts_final", incident="inc_m") == 0  # nobody final yet

    # One delivered, one skipped (final); the third is still being sent to.
    await seed_receipts(
        store,
        "ntc_m1",
        [
            {"subject_id": "a", "status": "delivered", "channel": "sms"},
            {"subject_id": "b", "status": "skipped", "channel": None},
        ],
        incident_id="inc_m",
    )
    await monitor.check(now)

    assert _value("alimi_notices", state="sending") == 1
    assert _value("alimi_notices", state="completed") == 1
    assert _value("alimi_incident_deadline_seconds_left", incident="inc_m") == 2 * 3600
    assert _value("alimi_incident_receipts", incident="inc_m") == 4
    assert _value("alimi_incident_receipts_final", incident="inc_m") == 2
    assert _value("alimi_incident_final_ratio", incident="inc_m") == 0.5
    assert _value("alimi_queue_messages_ready", queue="delivery.sms") == 0

    await bus.publish(topology.DELIVERY, "sms", b"{}", message_id="waiting")
    await store.notices.update_one({"_id": "ntc_m1"}, {"$set": {"state": "completed"}})
    await monitor.check(now)
    assert _value("alimi_incident_deadline_seconds_left", incident="inc_m") is None  # forgotten
    assert _value("alimi_queue_messages_ready", queue="delivery.sms") == 1
    assert _value("alimi_queue_consumers", queue="delivery.sms") == 0
