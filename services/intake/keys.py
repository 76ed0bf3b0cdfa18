"""Admin command for API keys: ``python -m alimi_intake.keys create|list|revoke``.

It talks to MongoDB directly (``ALIMI_MONGO_URL``, ``ALIMI_MONGO_DB``), so the
first admin key can be made before any exists. A new key is printed once and
stored only as a hash.

    python -m alimi_intake.keys create --name on-call --scopes incidents:write,incidents:read
    python -m alimi_intake.keys create --name ciso --scopes notices:approve,incidents:read
    python -m alimi_intake.keys list
    python -m alimi_intake.keys revoke <key id>
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys

from alimi import api_keys
from alimi.settings import SettingsError, load
from alimi.store import API_KEYS, Store
from alimi_intake.settings import IntakeSettings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m alimi_intake.keys", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    create = sub.add_parser("create", help="make a key and print it once")
    create.add_argument("--name", required=True, help="who or what uses it")
    create.add_argument(
        "--scopes", required=True, help=f"comma-separated: {', '.join(api_keys.SCOPES)}"
    )
    create.add_argument(
        "--allow-self-approval",
        action="store_true",
        help="let this key approve notices it created (skips the four-eyes rule)",
    )
    sub.add_parser("list", help="list keys (never their secrets)")
    revoke = sub.add_parser("revoke", help="revoke a key by id")
    revoke.add_argument("key_id")
    return parser


async def _run(args: argparse.Namespace, store: Store) -> int:
    await store.ensure_indexes(API_KEYS)
    if args.command == "create":
        scopes = [s.strip() for s in args.scopes.split(",") if s.strip()]
        try:
            token, key = await api_keys.create(
                store, name=args.name, scopes=scopes, allow_self_approval=args.allow_self_approval
            )
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print(f"key id:  {key.key_id}\nscopes:  {', '.join(sorted(key.scopes))}")
        print(f"API key: {token}\n(shown once: store it now; Alimi keeps only its hash)")
        return 0
    if args.command == "list":
        async for record in store.api_keys.find({}, {"hash": 0}).sort("created_at", 1):
            record["created_at"] = record["created_at"].isoformat()
            if record.get("revoked_at"):
                record["revoked_at"] = record["revoked_at"].isoformat()
            print(json.dumps(record, ensure_ascii=False))
        return 0
    if await api_keys.revoke(store, args.key_id):
        print(f"revoked {args.key_id}")
        return 0
    print(f"error: no active key {args.key_id}", file=sys.stderr)
    return 1


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = load(IntakeSettings, os.environ)
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    async def go() -> int:
        store = Store.from_settings(settings)
        try:
            return await _run(args, store)
        finally:
            await store.close()

    return asyncio.run(go())


if __name__ == "__main__":
    sys.exit(main())
