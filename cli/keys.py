"""``alimi keys create|revoke``: API keys (an admin key's work)."""

from __future__ import annotations

import click
from rich.console import Console

from alimi_cli.options import common, session


def _scopes(_: click.Context, __: click.Parameter, values: tuple[str, ...]) -> list[str]:
    """``--scopes a,b --scopes c`` as one list; the API refuses unknown ones, naming its own."""
    found = [s.strip() for value in values for s in value.split(",") if s.strip()]
    if not found:
        raise click.BadParameter("name at least one scope")
    return list(dict.fromkeys(found))


@click.group(short_help="API keys: create and revoke them (an admin key).")
def keys() -> None:
    """API keys: who may call the API, and for what (needs an admin key)."""


@keys.command()
@click.option("--name", required=True, help="Who or what uses the key, e.g. 'jane (approver)'.")
@click.option(
    "--scopes",
    required=True,
    multiple=True,
    callback=_scopes,
    metavar="SCOPE[,SCOPE...]",
    help="What the key may do, e.g. incidents:read,notices:approve "
    "(subjects:write, incidents:write, incidents:read, notices:approve, receipts:read, admin).",
)
@click.option(
    "--allow-self-approval",
    is_flag=True,
    help="Let this key approve notices it wrote itself (no second person: for automation).",
)
@common
def create(name: str, scopes: list[str], allow_self_approval: bool) -> None:
    """Create an API key. Its secret is shown once: store it now."""
    s = session()
    body = {"name": name, "scopes": scopes, "allow_self_approval": allow_self_approval}
    with s.api() as api:
        created = api.post("/v1/keys", body)

    def text(console: Console) -> None:
        console.print(
            f"Key {created['key_id']} ({created['name']}): {', '.join(created['scopes'])}",
        )
        console.print(f"API key: {created['api_key']}", soft_wrap=True)
        s.out.err.print("It is shown only this once: store it now (ALIMI_API_KEY).")

    s.out.result(created, text)


@keys.command()
@click.argument("key_id")
@common
def revoke(key_id: str) -> None:
    """Revoke an API key: it stops working at once."""
    s = session()
    with s.api() as api:
        api.delete(f"/v1/keys/{key_id}")
    result = {"key_id": key_id, "revoked": True}
    s.out.result(result, lambda console: console.print(f"Key {key_id} is revoked."))
