"""What the intake views need, opened and closed by the app's cleanup context."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from alimi.bus import Bus
from alimi.store import Store
from alimi_intake.jobs import Jobs
from alimi_intake.outbox import OutboxRelay
from alimi_intake.settings import IntakeSettings


@dataclass
class Context:
    settings: IntakeSettings
    store: Store
    bus: Bus
    outbox_relay: OutboxRelay
    jobs: Jobs


CONTEXT = web.AppKey("context", Context)
