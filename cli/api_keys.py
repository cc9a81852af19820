"""``gatewayctl api-keys``: create, list, rotate, re-tier and revoke public API keys."""

from __future__ import annotations

import click

from db.models import ApiKey
from db.session import session_scope
from services.public import api_keys
from services.public.tiers import key_tier_names


def _describe(record: ApiKey) -> str:
    status = "revoked" if record.is_revoked else "active"
    used = record.last_used_at.isoformat(timespec="seconds") if record.last_used_at else "never"
    return (
        f"{record.id}\t{record.prefix}\t{record.tier}\t{status}\t"
        f"created {record.created_at:%Y-%m-%d}\tlast used {used}\t{record.owner}"
    )


def _issued(issued: api_keys.IssuedKey, action: str) -> None:
    click.echo(f"{action} key {issued.record.id} ({issued.record.prefix}, {issued.record.tier})")
    click.echo("The key is shown once; store it now:", err=True)
    click.echo(issued.key)


@click.group("api-keys")
def api_keys_group() -> None:
    """Public API keys (only a hash is stored; a key is printed once)."""


@api_keys_group.command("create")
@click.option("--tier", required=True, help="free, starter, premium, enterprise, ...")
@click.option("--owner", required=True, help="Who the key is for (a label).")
def create_key(tier: str, owner: str) -> None:
    """Create a key and print it (the only time it is shown)."""
    if tier not in key_tier_names():
        raise click.BadParameter(f"choose from {key_tier_names()}", param_hint="--tier")
    with session_scope() as session:
        issued = api_keys.create_api_key(session, tier=tier, owner=owner)
    _issued(issued, "created")  # after the commit: a printed key always exists


@api_keys_group.command("list")
@click.option("--all", "include_revoked", is_flag=True, help="Include revoked keys.")
def list_keys(include_revoked: bool) -> None:
    """One line per key: id, prefix, tier, status, dates, owner."""
    with session_scope() as session:
        for record in api_keys.list_api_keys(session, include_revoked=include_revoked):
            click.echo(_describe(record))


@api_keys_group.command("rotate")
@click.argument("key_id", type=int)
def rotate_key(key_id: int) -> None:
    """Replace a key's secret; the old key stops working at once."""
    with session_scope() as session:
        issued = api_keys.rotate_api_key(session, key_id)
    _issued(issued, "rotated")


@api_keys_group.command("set-tier")
@click.argument("key_id", type=int)
@click.argument("tier")
def set_tier(key_id: int, tier: str) -> None:
    """Move a key to another tier."""
    with session_scope() as session:
        click.echo(_describe(api_keys.set_api_key_tier(session, key_id, tier=tier)))


@api_keys_group.command("revoke")
@click.argument("key_id", type=int)
def revoke_key(key_id: int) -> None:
    """Revoke a key (idempotent)."""
    with session_scope() as session:
        click.echo(_describe(api_keys.revoke_api_key(session, key_id)))
