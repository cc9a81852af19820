"""``gatewayctl workers``: the fleet registry and commands for a worker's next heartbeat."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import click

from cli.admin_api import admin_api
from cli.output import echo_json, json_option
from db.session import session_scope
from services.dispatch.fleet import queue_command
from settings import get_settings


@click.group("workers")
def workers_group() -> None:
    """HTTP workers known by their heartbeats."""


@workers_group.command("list")
@click.option("--state", type=click.Choice(["alive", "stale"]))
@json_option
def list_command(state: str | None, as_json: bool) -> None:
    """Workers, newest heartbeat first, with their load and current leases."""
    api = admin_api()
    if api is not None:
        body: dict[str, Any] = api.get("/admin/workers", {"state": state})
    else:
        from gateway_api.routes.admin_workers import build_worker_list

        with session_scope() as session:
            listing = build_worker_list(
                session,
                now=datetime.now(UTC),
                stale_s=get_settings().heartbeat_stale_s,
                state=state,
            )
        body = listing.model_dump(mode="json")
    if as_json:
        echo_json(body)
        return
    for w in body["workers"]:
        flags = w["state"] + (" paused" if w["is_paused"] else "")
        click.echo(
            f"{w['worker_id']:<32} {flags:<13} leases={w['current_leases']} "
            f"active={w['active_tasks']} platforms={','.join(w['platforms'])} "
            f"last={w['last_heartbeat_at']}"
        )
    if not body["workers"]:
        click.echo("no workers have sent a heartbeat")


@workers_group.command("command")
@click.argument("worker_id")
@click.argument("command", type=click.Choice(["pause", "resume", "shutdown"]))
def command_command(worker_id: str, command: str) -> None:
    """Queue COMMAND for WORKER_ID; its next heartbeat receives it."""
    api = admin_api()
    if api is not None:
        queued = api.post(f"/admin/workers/{worker_id}/commands", {"command": command})
        click.echo(f"queued {queued['command']} for {queued['worker_id']} (command {queued['id']})")
        return
    with session_scope() as session:
        row = queue_command(session, worker_id, command)
        click.echo(f"queued {row.command} for {row.worker_id} (command {row.id})")
