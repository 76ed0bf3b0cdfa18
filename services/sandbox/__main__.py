"""Entry point: ``python -m alimi_sandbox``, configured by ``SANDBOX_*`` variables."""

from __future__ import annotations

import logging
import os

from aiohttp import web

from alimi import logging as alimi_logging

from .app import init_app
from .config import ConfigError, SandboxConfig

log = logging.getLogger("alimi.sandbox")


def main() -> None:
    try:
        config = SandboxConfig.from_env(os.environ)
    except ConfigError as error:
        raise SystemExit(f"alimi-sandbox: invalid configuration: {error}") from None
    alimi_logging.configure("sandbox", os.environ.get("ALIMI_LOG_LEVEL", "INFO"))
    log.info(
        "starting sandbox on http://%s:%d (sender numbers: %d, %s, seed: %s)",
        config.host,
        config.port,
        len(config.sender_numbers),
        config.behaviour,
        config.seed,
    )
    # run_app turns SIGINT/SIGTERM into a graceful shutdown. The per-request access
    # log is off: benchmarks drive hundreds of requests a second through here.
    try:
        web.run_app(
            init_app(config),
            host=config.host,
            port=config.port,
            access_log=None,
            print=None,
            shutdown_timeout=5,
        )
    except OSError as error:  # typically the port is taken
        raise SystemExit(
            f"alimi-sandbox: cannot listen on {config.host}:{config.port}: {error}"
        ) from None


if __name__ == "__main__":
    main()
