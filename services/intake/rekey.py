"""Re-encrypt every subject's phone number under the current key.

    python -m alimi_intake.rekey [--chunk 1000]

Reads the intake's settings (``ALIMI_MONGO_URL``, ``ALIMI_MONGO_DB``,
``ALIMI_PHONE_KEYS``: the new key first, the old ones after it), re-encrypts
whatever is not yet under the first key, prints a JSON summary and exits 0;
1 if some numbers could not be decrypted (each is logged; they are left as
they are), 2 if the settings are wrong. Safe to run again at any time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from dataclasses import asdict

from alimi import logging as alimi_logging
from alimi.process import EXIT_CONFIG
from alimi.settings import SettingsError, load
from alimi.store import Store
from alimi_intake.privacy import CHUNK, Rekeyed, rekey_subjects
from alimi_intake.settings import IntakeSettings

log = logging.getLogger("alimi.intake.rekey")


async def _run(settings: IntakeSettings, chunk: int) -> Rekeyed:
    store = Store.from_settings(settings)
    try:
        return await rekey_subjects(store, settings.phone_keyring, chunk=chunk)
    finally:
        await store.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m alimi_intake.rekey",
        description="Re-encrypt every subject's phone number under the first ALIMI_PHONE_KEYS key.",
    )
    parser.add_argument("--chunk", type=int, default=CHUNK, help="subjects per bulk write")
    args = parser.parse_args(argv)
    try:
        settings = load(IntakeSettings, os.environ)
    except SettingsError as exc:
        print(f"rekey: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    alimi_logging.configure("intake-rekey", settings.log_level)
    for warning in settings.startup_warnings():
        log.warning(warning)
    result = asyncio.run(_run(settings, max(1, args.chunk)))
    print(json.dumps(asdict(result)))
    return 1 if result.unreadable else 0


if __name__ == "__main__":
    sys.exit(main())
