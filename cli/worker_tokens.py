"""``gatewayctl worker-tokens``: per-worker tokens bound to the worker ids they may use."""

from __future__ import annotations

from typing import Any

import click

from cli.admin_api import admin_api
from cli.output import echo_json, json_option
from db.models import WorkerCredential
from db.session import session_scope
from services.dispatch import worker_credentials


def _credential_json(record: WorkerCredential) -> dict[str, Any]:
    from gateway_api.routes.admin_worker_credentials import WorkerCredentialOut

    return WorkerCredentialOut.from_record(record).model_dump(mode="json")


def _describe(credential: dict[str, Any]) -> str:
    status = "revoked" if credential["revoked_at"] else "active"
    return (
        f"{credential['id']}\t{credential['prefix']}\t{credential['worker_ids']}\t{status}\t"
        f"created {credential['created_at'][:10]}\t{credential['owner']}"
    )


@click.group("worker-tokens")
def worker_tokens_group() -> None:
    """Worker tokens (only a hash is stored; a token is printed once)."""


@worker_tokens_group.command("create")
@click.option("--worker-ids", required=True, help="An exact worker id, or a prefix ending in '*'.")
@click.option("--owner", required=True, help="Who the token is for (a label).")
def create_token(worker_ids: str, owner: str) -> None:
    """Create a token and print it (the only time it is shown)."""
    api = admin_api()
    if api is not None:
        issued = api.post("/admin/worker-credentials", {"worker_ids": worker_ids, "owner": owner})
    else:
        with session_scope() as session:
            made = worker_credentials.create_worker_credential(
                session, worker_ids=worker_ids, owner=owner
            )
            issued = {**_credential_json(made.record), "token": made.token}
    click.echo(
        f"created worker token {issued['id']} ({issued['prefix']}, ids {issued['worker_ids']})"
    )
    click.echo("The token is shown once; store it now:", err=True)
    click.echo(issued["token"])


@worker_tokens_group.command("list")
@click.option("--all", "include_revoked", is_flag=True, help="Include revoked tokens.")
@json_option
def list_tokens(include_revoked: bool, as_json: bool) -> None:
    """One line per token: id, prefix, worker ids, status, created, owner."""
    api = admin_api()
    if api is not None:
        credentials: list[dict[str, Any]] = api.get(
            "/admin/worker-credentials", {"include_revoked": include_revoked}
        )["credentials"]
    else:
        with session_scope() as session:
            records = worker_credentials.list_worker_credentials(
                session, include_revoked=include_revoked
            )
            credentials = [_credential_json(record) for record in records]
    if as_json:
        echo_json({"credentials": credentials})
        return
    for credential in credentials:
        click.echo(_describe(credential))


@worker_tokens_group.command("revoke")
@click.argument("credential_id", type=int)
def revoke_token(credential_id: int) -> None:
    """Revoke a token (idempotent); the API refuses it within seconds."""
    api = admin_api()
    if api is not None:
        click.echo(_describe(api.post(f"/admin/worker-credentials/{credential_id}/revoke")))
        return
    with session_scope() as session:
        record = worker_credentials.revoke_worker_credential(session, credential_id)
        click.echo(_describe(_credential_json(record)))
