"""``gatewayctl ingest-rejects``: accepted result items that did not become parcels."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import click

from db.models import RejectReason
from db.session import session_scope
from services.ingest.rejects import (
    count_rejects,
    delete_rejects,
    get_reject,
    list_rejects,
    reingest_rejects,
)
from settings import get_settings

_REASONS = click.Choice([reason.value for reason in RejectReason])


def _reason(value: str | None) -> RejectReason | None:
    return RejectReason(value) if value else None


@click.group("ingest-rejects")
def ingest_rejects_group() -> None:
    """Result items that were accepted but could not be written, with their reasons."""


@ingest_rejects_group.command("list")
@click.option("--reason", type=_REASONS)
@click.option("--limit", type=click.IntRange(1, 500), default=50, show_default=True)
def list_command(reason: str | None, limit: int) -> None:
    """Newest first: id, reason, platform, parcel, when; then the totals held by reason."""
    with session_scope() as session:
        rejects = list_rejects(session, reason_code=_reason(reason), limit=limit)
        for reject in rejects:
            click.echo(
                f"{reject.id:>8}  {reject.reason_code:<15} {reject.platform or '?':<10}"
                f" {reject.parcel_id or '?'}  {reject.created_at.isoformat(timespec='seconds')}"
                f"  {reject.reason[:100]}"
            )
        counts = count_rejects(session)
    if not rejects:
        click.echo("no ingest rejects match")
    click.echo("held: " + ", ".join(f"{code} {n}" for code, n in counts.items()))


@ingest_rejects_group.command("show")
@click.argument("reject_id", type=click.IntRange(1))
def show_command(reject_id: int) -> None:
    """One reject with the item as it was sent (JSON)."""
    with session_scope() as session:
        reject = get_reject(session, reject_id)
        click.echo(
            json.dumps(
                {
                    "id": reject.id,
                    "reason_code": reject.reason_code,
                    "reason": reject.reason,
                    "task_id": str(reject.task_id) if reject.task_id else None,
                    "request_id": reject.request_id,
                    "message_id": reject.message_id,
                    "created_at": reject.created_at.isoformat(),
                    "item": json.loads(reject.payload),
                },
                indent=2,
            )
        )


@ingest_rejects_group.command("reingest")
@click.option("--id", "ids", type=click.IntRange(1), multiple=True, help="one reject (repeatable)")
@click.option("--reason", type=_REASONS)
@click.option("--all", "everything", is_flag=True, help="every reject (up to --limit)")
@click.option("--limit", type=click.IntRange(1, 10_000), default=1000, show_default=True)
def reingest_command(
    ids: tuple[int, ...], reason: str | None, everything: bool, limit: int
) -> None:
    """Send matching rejects back to the ingest queue, once the fault that held them is fixed."""
    if not (ids or reason or everything):
        raise click.UsageError("say which rejects: --id, --reason or --all")
    from tasks.ingest import publish_result_chunks

    chunk_size = get_settings().ingest_chunk_size
    with session_scope() as session:
        count = reingest_rejects(
            session,
            publish=lambda payloads: publish_result_chunks(payloads, chunk_size=chunk_size),
            ids=list(ids) or None,
            reason_code=_reason(reason),
            limit=limit,
        )
    click.echo(f"re-ingesting {count} items (any that fail again are recorded again)")


@ingest_rejects_group.command("purge")
@click.option("--id", "ids", type=click.IntRange(1), multiple=True, help="one reject (repeatable)")
@click.option("--reason", type=_REASONS)
@click.option("--older-than", "older_than_s", type=click.FloatRange(0), help="seconds old")
@click.confirmation_option(prompt="Delete the matching rejects for good?")
def purge_command(ids: tuple[int, ...], reason: str | None, older_than_s: float | None) -> None:
    """Delete matching rejects for good."""
    created_before = (
        datetime.now(UTC) - timedelta(seconds=older_than_s) if older_than_s is not None else None
    )
    with session_scope() as session:
        purged = delete_rejects(
            session, ids=list(ids) or None, reason_code=_reason(reason),
            created_before=created_before,
        )  # fmt: skip
    click.echo(f"purged {purged}")
