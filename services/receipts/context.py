"""What the receipts views need, opened and closed by the app's cleanup context."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from aiohttp import web

from alimi.store import Store
from alimi_receipts.settings import ReceiptsSettings


@dataclass
class Context:
    settings: ReceiptsSettings
    store: Store
    # Turns to apply reports: the store applies one request's bulk write at a
    # time anyway, and requests queued without bound each hold a connection and
    # time out at the provider, which sends them again (load that feeds itself).
    turns: asyncio.Semaphore


CONTEXT = web.AppKey("context", Context)
