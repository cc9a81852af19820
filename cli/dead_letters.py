"""``gatewayctl dead-letters``: list, show, re-drive and purge dead-lettered tasks."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import click

from db.session import session_scope
from services.dispatch.dead_letters import (
    DeadLetterFilter,
    get_dead_letter,
    list_dead_letters,
    purge_dead_letters,
    redrive_dead_letters,
)
from settings import get_settings

_filters = [
    click.option("--platform"),
    click.option("--reason", help="e.g. platform_down, lease_expired"),
    click.option("--older-than", "older_than_s", type=float, help="seconds since it died"),
    click.option("--id", "task_ids", type=click.UUID, multiple=True, help="one task (repeatable)"),
]


F = TypeVar("F", bound=Callable[..., Any])


def filter_options(function: F) -> F:
    for option in reversed(_filters):
        function = option(function)
    return function


def _filter(
    platform: str | None,
    reason: str | None,
    older_than_s: float | None,
    task_ids: tuple[uuid.UUID, ...],
) -> DeadLetterFilter:
    return DeadLetterFilter(
        task_ids=list(task_ids), platform=platform, reason=reason, older_than_s=older_than_s
    )


@click.group("dead-letters")
def dead_letters_group() -> None:
    """Tasks that used up their attempts."""


@dead_letters_group.command("list")
@filter_options
@click.option("--limit", type=click.IntRange(1, 500), default=50, show_default=True)
def list_command(
    platform: str | None,
    reason: str | None,
    older_than_s: float | None,
    task_ids: tuple[uuid.UUID, ...],
    limit: int,
) -> None:
    """Newest first: id, platform, parcel, reason, attempts, when."""
    with session_scope() as session:
        tasks = list_dead_letters(
            session,
            _filter(platform, reason, older_than_s, task_ids),
            now=datetime.now(UTC),
            limit=limit,
        )
        for task in tasks:
            died = task.finished_at.isoformat(timespec="seconds") if task.finished_at else "?"
            click.echo(
                f"{task.id}  {task.platform:<10} {task.state}/{task.county}/{task.parcel_id}"
                f"  {task.last_error_reason}  attempts={task.attempt}  {died}"
            )
    if not tasks:
        click.echo("no dead letters match")


@dead_letters_group.command("show")
@click.argument("task_id", type=click.UUID)
def show_command(task_id: uuid.UUID) -> None:
    """One dead letter with its error history (JSON)."""
    with session_scope() as session:
        task = get_dead_letter(session, task_id)
        click.echo(
            json.dumps(
                {
                    "task_id": str(task.id),
                    "platform": task.platform,
                    "parcel": f"{task.state}/{task.county}/{task.parcel_id}",
                    "attempt": task.attempt,
                    "reason": task.last_error_reason,
                    "message": task.last_error_message,
                    "error_history": task.error_history,
                },
                indent=2,
            )
        )


@dead_letters_group.command("redrive")
@filter_options
@click.option("--limit", type=click.IntRange(1, 10_000), default=1000, show_default=True)
@click.option("--rate", "rate_per_s", type=float, help="tasks a second back into the queues")
def redrive_command(
    platform: str | None,
    reason: str | None,
    older_than_s: float | None,
    task_ids: tuple[uuid.UUID, ...],
    limit: int,
    rate_per_s: float | None,
) -> None:
    """Give matching dead letters fresh attempts, paced by the rate cap."""
    with session_scope() as session:
        report = redrive_dead_letters(
            session,
            _filter(platform, reason, older_than_s, task_ids),
            now=datetime.now(UTC),
            limit=limit,
            rate_per_s=rate_per_s or get_settings().redrive_rate_per_s,
        )
    skipped = len(report.skipped_active)
    click.echo(f"re-driven {len(report.redriven)}, skipped (parcel active again) {skipped}")
    if report.last_due_at is not None:
        click.echo(f"the last one re-enters its queue at {report.last_due_at.isoformat()}")


@dead_letters_group.command("purge")
@filter_options
@click.option("--all", "purge_all", is_flag=True, help="purge every dead letter")
@click.confirmation_option(prompt="Purge the matching dead letters?")
def purge_command(
    platform: str | None,
    reason: str | None,
    older_than_s: float | None,
    task_ids: tuple[uuid.UUID, ...],
    purge_all: bool,
) -> None:
    """Drop matching dead letters (kept in the ledger as cancelled)."""
    with session_scope() as session:
        purged = purge_dead_letters(
            session,
            _filter(platform, reason, older_than_s, task_ids),
            now=datetime.now(UTC),
            purge_all=purge_all,
        )
    click.echo(f"purged {purged}")
