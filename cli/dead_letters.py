"""``gatewayctl dead-letters``: list, show, re-drive and purge dead-lettered tasks."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import click

from cli.admin_api import admin_api
from cli.output import DURATION, echo_json, json_option
from cli.tasks import print_task, task_json
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
    click.option(
        "--older-than", "older_than_s", type=DURATION, help="died longer ago than: 90s, 2h, 1d"
    ),
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


def _filter_body(filters: DeadLetterFilter) -> dict[str, Any]:
    return {
        "task_ids": [str(task_id) for task_id in filters.task_ids],
        "platform": filters.platform,
        "reason": filters.reason,
        "older_than_s": filters.older_than_s,
    }


@click.group("dead-letters")
def dead_letters_group() -> None:
    """Tasks that used up their attempts."""


@dead_letters_group.command("list")
@filter_options
@click.option("--limit", type=click.IntRange(1, 500), default=50, show_default=True)
@json_option
def list_command(
    platform: str | None,
    reason: str | None,
    older_than_s: float | None,
    task_ids: tuple[uuid.UUID, ...],
    limit: int,
    as_json: bool,
) -> None:
    """Newest first: id, platform, parcel, reason, attempts, when."""
    filters = _filter(platform, reason, older_than_s, task_ids)
    api = admin_api()
    if api is not None:
        params = {"platform": platform, "reason": reason, "older_than_s": older_than_s}
        items: list[dict[str, Any]] = api.get("/admin/dead-letters", {**params, "limit": limit})[
            "items"
        ]
        wanted = {str(task_id) for task_id in task_ids}
        items = [item for item in items if not wanted or item["task_id"] in wanted]
    else:
        with session_scope() as session:
            tasks = list_dead_letters(session, filters, now=datetime.now(UTC), limit=limit)
            items = [task_json(task) for task in tasks]
    if as_json:
        echo_json({"items": items})
        return
    for item in items:
        click.echo(
            f"{item['task_id']}  {item['platform']:<10} "
            f"{item['state']}/{item['county']}/{item['parcel_id']}  {item['last_error_reason']}"
            f"  attempts={item['attempt']}  {item['finished_at'] or '?'}"
        )
    if not items:
        click.echo("no dead letters match")


@dead_letters_group.command("show")
@click.argument("task_id", type=click.UUID)
@json_option
def show_command(task_id: uuid.UUID, as_json: bool) -> None:
    """One dead letter with its error history."""
    api = admin_api()
    if api is not None:
        task = api.get(f"/admin/dead-letters/{task_id}")
    else:
        with session_scope() as session:
            task = task_json(get_dead_letter(session, task_id))
    print_task(task, as_json)


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
    filters = _filter(platform, reason, older_than_s, task_ids)
    api = admin_api()
    if api is not None:
        body = {**_filter_body(filters), "limit": limit, "rate_per_s": rate_per_s}
        answer = api.post("/admin/dead-letters/redrive", body)
        redriven, skipped, last_due_at = (
            answer["redriven"],
            answer["skipped_active"],
            answer["last_due_at"],
        )
    else:
        with session_scope() as session:
            report = redrive_dead_letters(
                session,
                filters,
                now=datetime.now(UTC),
                limit=limit,
                rate_per_s=rate_per_s or get_settings().redrive_rate_per_s,
            )
        redriven, skipped = len(report.redriven), len(report.skipped_active)
        last_due_at = report.last_due_at.isoformat() if report.last_due_at else None
    click.echo(f"re-driven {redriven}, skipped (parcel active again) {skipped}")
    if last_due_at is not None:
        click.echo(f"the last one re-enters its queue at {last_due_at}")


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
    filters = _filter(platform, reason, older_than_s, task_ids)
    api = admin_api()
    if api is not None:
        body = {**_filter_body(filters), "purge_all": purge_all}
        purged = api.post("/admin/dead-letters/purge", body)["purged"]
    else:
        with session_scope() as session:
            purged = purge_dead_letters(
                session, filters, now=datetime.now(UTC), purge_all=purge_all
            )
    click.echo(f"purged {purged}")
