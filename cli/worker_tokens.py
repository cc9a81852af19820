"""``gatewayctl worker-tokens``: per-worker tokens bound to the worker ids they may use."""

from __future__ import annotations

import click

from db.models import WorkerCredential
from db.session import session_scope
from services.dispatch import worker_credentials


def _describe(record: WorkerCredential) -> str:
    status = "revoked" if record.is_revoked else "active"
    return (
        f"{record.id}\t{record.prefix}\t{record.worker_ids}\t{status}\t"
        f"created {record.created_at:%Y-%m-%d}\t{record.owner}"
    )


@click.group("worker-tokens")
def worker_tokens_group() -> None:
    """Worker tokens (only a hash is stored; a token is printed once)."""


@worker_tokens_group.command("create")
@click.option("--worker-ids", required=True, help="An exact worker id, or a prefix ending in '*'.")
@click.option("--owner", required=True, help="Who the token is for (a label).")
def create_token(worker_ids: str, owner: str) -> None:
    """Create a token and print it (the only time it is shown)."""
    with session_scope() as session:
        issued = worker_credentials.create_worker_credential(
            session, worker_ids=worker_ids, owner=owner
        )
    record = issued.record
    click.echo(f"created worker token {record.id} ({record.prefix}, ids {record.worker_ids})")
    click.echo("The token is shown once; store it now:", err=True)
    click.echo(issued.token)


@worker_tokens_group.command("list")
@click.option("--all", "include_revoked", is_flag=True, help="Include revoked tokens.")
def list_tokens(include_revoked: bool) -> None:
    """One line per token: id, prefix, worker ids, status, created, owner."""
    with session_scope() as session:
        for record in worker_credentials.list_worker_credentials(
            session, include_revoked=include_revoked
        ):
            click.echo(_describe(record))


@worker_tokens_group.command("revoke")
@click.argument("credential_id", type=int)
def revoke_token(credential_id: int) -> None:
    """Revoke a token (idempotent); the API refuses it within seconds."""
    with session_scope() as session:
        click.echo(_describe(worker_credentials.revoke_worker_credential(session, credential_id)))
