"""``gatewayctl ingest-rejects``: accepted result items that did not become parcels."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import click

from cli.admin_api import admin_api
from cli.output import DURATION, echo_json, json_option
from db.models import IngestReject, RejectReason
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


def _reject_json(reject: IngestReject, *, with_payload: bool = False) -> dict[str, Any]:
    from gateway_api.routes.admin_ingest_rejects import reject_out

    return reject_out(reject, with_payload=with_payload).model_dump(mode="json")


@click.group("ingest-rejects")
def ingest_rejects_group() -> None:
    """Result items that were accepted but could not be written, with their reasons."""


@ingest_rejects_group.command("list")
@click.option("--reason", type=_REASONS)
@click.option("--limit", type=click.IntRange(1, 500), default=50, show_default=True)
@json_option
def list_command(reason: str | None, limit: int, as_json: bool) -> None:
    """Newest first: id, reason, platform, parcel, when; then the totals held by reason."""
    api = admin_api()
    if api is not None:
        body: dict[str, Any] = api.get("/admin/ingest-rejects", {"reason": reason, "limit": limit})
    else:
        with session_scope() as session:
            rejects = list_rejects(session, reason_code=_reason(reason), limit=limit)
            body = {
                "items": [_reject_json(reject) for reject in rejects],
                "counts": count_rejects(session),
            }
    if as_json:
        echo_json(body)
        return
    for item in body["items"]:
        click.echo(
            f"{item['id']:>8}  {item['reason_code']:<15} {item['platform'] or '?':<10}"
            f" {item['parcel_id'] or '?'}  {item['created_at']}  {item['reason'][:100]}"
        )
    if not body["items"]:
        click.echo("no ingest rejects match")
    click.echo("held: " + ", ".join(f"{code} {n}" for code, n in body["counts"].items()))


@ingest_rejects_group.command("show")
@click.argument("reject_id", type=click.IntRange(1))
@json_option
def show_command(reject_id: int, as_json: bool) -> None:
    """One reject with the item as it was sent."""
    api = admin_api()
    if api is not None:
        reject: dict[str, Any] = api.get(f"/admin/ingest-rejects/{reject_id}")
    else:
        with session_scope() as session:
            reject = _reject_json(get_reject(session, reject_id), with_payload=True)
    if as_json:
        echo_json(reject)
        return
    click.echo(f"reject {reject['id']}  {reject['reason_code']}  {reject['created_at']}")
    click.echo(f"  {reject['reason']}")
    click.echo(f"  task {reject['task_id'] or '-'}  request {reject['request_id'] or '-'}")
    click.echo(json.dumps(json.loads(reject["payload"] or "null"), indent=2))


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
    api = admin_api()
    if api is not None:
        body = {"ids": list(ids) or None, "reason": reason, "limit": limit}
        count = api.post("/admin/ingest-rejects/reingest", body)["reingested"]
    else:
        from services.ingest.outbox import record_and_publish

        chunk_size = get_settings().ingest_chunk_size
        with session_scope() as session:
            count = reingest_rejects(
                session,
                publish=lambda payloads: record_and_publish(
                    session, payloads, chunk_size=chunk_size
                ),
                ids=list(ids) or None,
                reason_code=_reason(reason),
                limit=limit,
            )
    click.echo(f"re-ingesting {count} items (any that fail again are recorded again)")


@ingest_rejects_group.command("purge")
@click.option("--id", "ids", type=click.IntRange(1), multiple=True, help="one reject (repeatable)")
@click.option("--reason", type=_REASONS)
@click.option("--older-than", "older_than_s", type=DURATION, help="age: 90s, 2h, 7d")
@click.confirmation_option(prompt="Delete the matching rejects for good?")
def purge_command(ids: tuple[int, ...], reason: str | None, older_than_s: float | None) -> None:
    """Delete matching rejects for good."""
    api = admin_api()
    if api is not None:
        body = {"ids": list(ids) or None, "reason": reason, "older_than_s": older_than_s}
        purged = api.post("/admin/ingest-rejects/purge", body)["purged"]
    else:
        created_before = (
            datetime.now(UTC) - timedelta(seconds=older_than_s)
            if older_than_s is not None
            else None
        )
        with session_scope() as session:
            purged = delete_rejects(
                session, ids=list(ids) or None, reason_code=_reason(reason),
                created_before=created_before,
            )  # fmt: skip
    click.echo(f"purged {purged}")
