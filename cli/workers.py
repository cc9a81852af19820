"""``gatewayctl workers``: the fleet registry and commands for a worker's next heartbeat."""

from __future__ import annotations

from datetime import UTC, datetime

import click

from db.session import session_scope
from services.dispatch.fleet import list_workers, queue_command
from settings import get_settings


@click.group("workers")
def workers_group() -> None:
    """HTTP workers known by their heartbeats."""


@workers_group.command("list")
@click.option("--state", type=click.Choice(["alive", "stale"]))
def list_command(state: str | None) -> None:
    """Workers, newest heartbeat first, with their load and current leases."""
    with session_scope() as session:
        views = list_workers(
            session,
            now=datetime.now(UTC),
            stale_s=get_settings().heartbeat_stale_s,
            is_alive=None if state is None else state == "alive",
        )
        for view in views:
            w = view.worker
            flags = ("alive" if view.is_alive else "stale") + (" paused" if w.is_paused else "")
            click.echo(
                f"{w.worker_id:<32} {flags:<13} leases={view.current_leases} "
                f"active={w.active_tasks} platforms={','.join(w.platforms)} "
                f"last={w.last_heartbeat_at.isoformat(timespec='seconds')}"
            )
    if not views:
        click.echo("no workers have sent a heartbeat")


@workers_group.command("command")
@click.argument("worker_id")
@click.argument("command", type=click.Choice(["pause", "resume", "shutdown"]))
def command_command(worker_id: str, command: str) -> None:
    """Queue COMMAND for WORKER_ID; its next heartbeat receives it."""
    with session_scope() as session:
        queued = queue_command(session, worker_id, command)
        click.echo(f"queued {queued.command} for {queued.worker_id} (command {queued.id})")
