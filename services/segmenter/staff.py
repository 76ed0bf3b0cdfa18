"""Staff updates (Slack) about a notice: published before the state they announce is saved.

Publishing first means a crash can repeat an update but never lose one; the
Slack worker posts each stage of a notice once.
"""

from __future__ import annotations

from alimi import topology
from alimi.bus import Bus
from alimi.messages import StaffStage, StaffUpdate

STAFF_CHANNEL = "slack"


async def announce(
    bus: Bus, *, notice_id: str, incident_id: str, stage: StaffStage, percent: int = 0
) -> None:
    update = StaffUpdate(notice_id=notice_id, incident_id=incident_id, stage=stage, percent=percent)
    await bus.publish(
        topology.DELIVERY,
        STAFF_CHANNEL,
        update.to_bytes(),
        message_id=f"{notice_id}:staff:{stage}:{percent}",
    )
