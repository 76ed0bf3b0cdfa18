"""Process life cycle shared by every service's ``__main__``.

:func:`main` loads the settings (exit code 2 with the offending variables
named if they are wrong), configures JSON logging, runs the service until
SIGTERM or SIGINT, then lets it shut down gracefully.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Protocol, TypeVar

from alimi import logging as alimi_logging
from alimi.settings import BaseSettings, SettingsError, load
from alimi.topology import TopologyMismatch

log = logging.getLogger("alimi.process")

S = TypeVar("S", bound=BaseSettings)

EXIT_CONFIG = 2


class Service(Protocol):
    async def start(self) -> None: ...
    async def stop(self) -> None: ...


def main(name: str, settings_model: type[S], build: Callable[[S], Service]) -> int:
    try:
        settings = load(settings_model, os.environ)
    except SettingsError as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    alimi_logging.configure(name, settings.log_level)
    for warning in settings.startup_warnings():
        log.warning(warning)
    try:
        asyncio.run(_serve(build(settings)))
    except StartupFailed as exc:
        log.error("start-up failed", extra={"reason": str(exc)})
        return 1
    return 0


class StartupFailed(Exception):
    pass


async def _serve(service: Service) -> None:
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    starting = asyncio.create_task(service.start())
    stop_wait = asyncio.create_task(stopping.wait())
    await asyncio.wait({starting, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
    if not starting.done():
        starting.cancel()
        await asyncio.gather(starting, return_exceptions=True)
    elif starting.exception() is not None:
        stop_wait.cancel()
        await service.stop()
        raise StartupFailed(repr(starting.exception()))
    else:
        log.info("started")
        await stop_wait
    log.info("stopping")
    await service.stop()
    log.info("stopped")


async def retry_until(
    what: str, attempt: Callable[[], Awaitable[None]], *, timeout_s: float = 120.0
) -> None:
    """Run ``attempt`` until it succeeds, backing off, for dependencies still starting."""
    delay = 0.25
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        try:
            await attempt()
            return
        except TopologyMismatch as exc:  # waiting will not make it right
            raise StartupFailed(f"{what}: {exc}") from exc
        except Exception as exc:
            if asyncio.get_running_loop().time() + delay > deadline:
                raise StartupFailed(f"{what} not reachable: {exc!r}") from exc
            log.warning("waiting for dependency", extra={"dependency": what, "error": repr(exc)})
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)


RECANCEL_EVERY_S = 1.0  # long enough for a cancelled task's own clean-up write


async def cancel_and_wait(tasks: Iterable[asyncio.Task[Any]]) -> None:
    """Cancel ``tasks`` and wait until every one has ended, cancelling again as needed.

    A single ``cancel()`` can be lost: on Python 3.11, ``asyncio.wait_for`` with a
    timeout returns the result instead of raising when the cancellation arrives as
    the awaited call completes, and PyMongo awaits its socket writes that way once an
    operation timeout (``timeoutMS``) is set. A loop around such calls would then never
    end, and neither would a shutdown waiting for it.
    """
    pending = {t for t in tasks if not t.done()}
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=RECANCEL_EVERY_S)
