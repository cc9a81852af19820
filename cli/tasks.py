"""``gatewayctl tasks``: one task of the ledger (show, cancel) and the ledger's balance."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import click

from cli.admin_api import admin_api
from cli.output import echo_json, json_option
from db.models import ScrapeTask
from db.session import session_scope
from services.dispatch.cancellation import cancel_task
from services.dispatch.ledger_stats import ledger_balance
from services.errors import NotFound


def task_json(task: ScrapeTask) -> dict[str, Any]:
    from gateway_api.routes.admin_tasks import task_out

    return task_out(task).model_dump(mode="json")


@click.group("tasks")
def tasks_group() -> None:
    """Scrape tasks in the ledger."""


@tasks_group.command("balance")
@json_option
def balance_command(as_json: bool) -> None:
    """The ledger invariant: enqueued = succeeded + dead + cancelled + active."""
    api = admin_api()
    if api is not None:
        balance: dict[str, int] = api.get("/admin/tasks/balance")
    else:
        with session_scope() as session:
            balance = ledger_balance(session)
    if as_json:
        echo_json(balance)
        return
    parts = balance["succeeded"] + balance["dead"] + balance["cancelled"] + balance["active"]
    click.echo(
        f"enqueued {balance['enqueued']} = succeeded {balance['succeeded']} + dead "
        f"{balance['dead']} + cancelled {balance['cancelled']} + active {balance['active']}"
    )
    gap = balance["enqueued"] - parts
    click.echo("balanced" if gap == 0 else f"NOT balanced: off by {gap}")


@tasks_group.command("show")
@click.argument("task_id", type=click.UUID)
@json_option
def show_command(task_id: uuid.UUID, as_json: bool) -> None:
    """One task with its attempts and errors."""
    api = admin_api()
    if api is not None:
        task = api.get(f"/admin/tasks/{task_id}")
    else:
        with session_scope() as session:
            row = session.get(ScrapeTask, task_id)
            if row is None:
                raise NotFound(f"task {task_id} does not exist")
            task = task_json(row)
    print_task(task, as_json)


@tasks_group.command("cancel")
@click.argument("task_id", type=click.UUID)
@json_option
def cancel_command(task_id: uuid.UUID, as_json: bool) -> None:
    """Cancel an active task; a worker holding it gets 409 from then on."""
    api = admin_api()
    if api is not None:
        task = api.post(f"/admin/tasks/{task_id}/cancel")
    else:
        with session_scope() as session:
            task = task_json(cancel_task(session, task_id, now=datetime.now(UTC)))
    print_task(task, as_json)


def print_task(task: dict[str, Any], as_json: bool) -> None:
    if as_json:
        echo_json(task)
        return
    click.echo(
        f"{task['task_id']}  {task['platform']}  {task['state']}/{task['county']}/"
        f"{task['parcel_id']}  p{task['priority']}"
    )
    click.echo(f"  status {task['status']}, attempt {task['attempt']} of {task['max_retries'] + 1}")
    if task["leased_by"]:
        click.echo(f"  held by {task['leased_by']} until {task['lease_expires_at']}")
    if task["due_at"]:
        click.echo(f"  due again at {task['due_at']}")
    click.echo(f"  created {task['created_at']}, finished {task['finished_at'] or '-'}")
    if task["last_error_reason"]:
        click.echo(f"  last error: {task['last_error_reason']}: {task['last_error_message']}")
    for entry in task["error_history"]:
        click.echo(
            f"  attempt {entry.get('attempt')}: {entry.get('reason')} {entry.get('message', '')}"
        )
