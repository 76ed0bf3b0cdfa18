"""What the receipts views need, opened and closed by the app's cleanup context."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from alimi.store import Store
from alimi_receipts.settings import ReceiptsSettings


@dataclass
class Context:
    settings: ReceiptsSettings
    store: Store


CONTEXT = web.AppKey("context", Context)
