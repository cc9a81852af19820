"""``gatewayctl api-keys``: create, list, rotate, re-tier and revoke public API keys."""

from __future__ import annotations

from typing import Any

import click

from cli.admin_api import admin_api
from cli.output import echo_json, json_option
from db.models import ApiKey
from db.session import session_scope
from services.public import api_keys
from services.public.tiers import key_tier_names


def _key_json(record: ApiKey, secret: str | None = None) -> dict[str, Any]:
    from gateway_api.routes.admin_api_keys import ApiKeyOut

    body = ApiKeyOut.from_record(record).model_dump(mode="json")
    return body if secret is None else {**body, "key": secret}


def _describe(key: dict[str, Any]) -> str:
    status = "revoked" if key["revoked_at"] else "active"
    used = key["last_used_at"] or "never"
    return (
        f"{key['id']}\t{key['prefix']}\t{key['tier']}\t{status}\t"
        f"created {key['created_at'][:10]}\tlast used {used}\t{key['owner']}"
    )


def _print_issued(issued: dict[str, Any], action: str) -> None:
    click.echo(f"{action} key {issued['id']} ({issued['prefix']}, {issued['tier']})")
    click.echo("The key is shown once; store it now:", err=True)
    click.echo(issued["key"])


@click.group("api-keys")
def api_keys_group() -> None:
    """Public API keys (only a hash is stored; a key is printed once)."""


@api_keys_group.command("create")
@click.option("--tier", required=True, help="free, starter, premium, enterprise, ...")
@click.option("--owner", required=True, help="Who the key is for (a label).")
def create_key(tier: str, owner: str) -> None:
    """Create a key and print it (the only time it is shown)."""
    api = admin_api()
    if api is not None:
        issued = api.post("/admin/api-keys", {"tier": tier, "owner": owner})
    else:
        if tier not in key_tier_names():
            raise click.BadParameter(f"choose from {key_tier_names()}", param_hint="--tier")
        with session_scope() as session:
            made = api_keys.create_api_key(session, tier=tier, owner=owner)
            issued = _key_json(made.record, made.key)
    _print_issued(issued, "created")  # after the commit: a printed key always exists


@api_keys_group.command("list")
@click.option("--all", "include_revoked", is_flag=True, help="Include revoked keys.")
@json_option
def list_keys(include_revoked: bool, as_json: bool) -> None:
    """One line per key: id, prefix, tier, status, dates, owner."""
    api = admin_api()
    if api is not None:
        keys: list[dict[str, Any]] = api.get(
            "/admin/api-keys", {"include_revoked": include_revoked}
        )["keys"]
    else:
        with session_scope() as session:
            records = api_keys.list_api_keys(session, include_revoked=include_revoked)
            keys = [_key_json(record) for record in records]
    if as_json:
        echo_json({"keys": keys})
        return
    for key in keys:
        click.echo(_describe(key))


@api_keys_group.command("rotate")
@click.argument("key_id", type=int)
def rotate_key(key_id: int) -> None:
    """Replace a key's secret; the old key stops working at once."""
    api = admin_api()
    if api is not None:
        issued = api.post(f"/admin/api-keys/{key_id}/rotate")
    else:
        with session_scope() as session:
            made = api_keys.rotate_api_key(session, key_id)
            issued = _key_json(made.record, made.key)
    _print_issued(issued, "rotated")


@api_keys_group.command("set-tier")
@click.argument("key_id", type=int)
@click.argument("tier")
def set_tier(key_id: int, tier: str) -> None:
    """Move a key to another tier."""
    api = admin_api()
    if api is not None:
        click.echo(_describe(api.patch(f"/admin/api-keys/{key_id}", {"tier": tier})))
        return
    with session_scope() as session:
        click.echo(_describe(_key_json(api_keys.set_api_key_tier(session, key_id, tier=tier))))


@api_keys_group.command("revoke")
@click.argument("key_id", type=int)
def revoke_key(key_id: int) -> None:
    """Revoke a key (idempotent)."""
    api = admin_api()
    if api is not None:
        click.echo(_describe(api.post(f"/admin/api-keys/{key_id}/revoke")))
        return
    with session_scope() as session:
        click.echo(_describe(_key_json(api_keys.revoke_api_key(session, key_id))))
