"""``gatewayctl import-legacy``: take over a running original gateway's tasks and parcels.

Reads (never changes) the original's Redis lists and its ``parcels`` table, enqueues and
ingests them through the normal paths, with a progress bar and a summary. Safe to run again.
"""

from __future__ import annotations

from collections.abc import Sequence

import click
import redis
from sqlalchemy import create_engine
from sqlalchemy.exc import OperationalError
from tqdm import tqdm

from db.session import session_scope
from services import legacy_import
from services.dispatch.enqueue import EnqueueReport, EnqueueRequest
from settings import get_settings, to_sqlalchemy_url


@click.command("import-legacy")
@click.option("--redis-url", help="The original gateway's Redis (queue:* and processing:*).")
@click.option("--postgres-url", help="The original gateway's PostgreSQL (its parcels table).")
@click.option("--batch-size", type=click.IntRange(1, 10_000), default=1000, show_default=True)
def import_legacy_command(redis_url: str | None, postgres_url: str | None, batch_size: int) -> None:
    """Enqueue the original's queued and in-flight tasks and ingest its parcels."""
    if not redis_url and not postgres_url:
        raise click.UsageError("give --redis-url and/or --postgres-url of the original gateway")
    if get_settings().api_url:
        # It reads what was already imported and writes parcels: the admin API has no route
        # for either, and a migration is run by someone holding the database anyway.
        raise click.ClickException(
            "import-legacy works on the database directly: unset GATEWAY_API_URL"
        )
    try:
        if redis_url:
            _import_tasks(redis_url, batch_size)
        if postgres_url:
            _import_parcels(postgres_url, batch_size)
    except redis.RedisError as exc:
        raise click.ClickException(f"the original's Redis: {exc}") from exc
    except OperationalError as exc:
        raise click.ClickException(f"PostgreSQL: {exc.orig}") from exc


def _enqueue_legacy(requests: Sequence[EnqueueRequest]) -> EnqueueReport:
    from services.dispatch.broker_client import enqueue_and_publish

    return enqueue_and_publish(requests, request_id=legacy_import.LEGACY_REQUEST_ID)


def _import_tasks(redis_url: str, batch_size: int) -> None:
    client = redis.Redis.from_url(redis_url, socket_timeout=10)
    try:
        sources = legacy_import.find_legacy_lists(client)
        with session_scope() as session:
            imported = legacy_import.imported_task_identities(session)
        total = sum(source.length for source in sources)
        with tqdm(total=total, unit="task", desc="tasks", disable=None) as progress:
            counts = legacy_import.import_legacy_tasks(
                client,
                sources,
                already_imported=imported,
                enqueue=_enqueue_legacy,
                batch_size=batch_size,
                on_progress=progress.update,
            )
    finally:
        client.close()
    click.echo(
        f"tasks: {counts.queued} queued and {counts.in_processing} in processing in "
        f"{len(sources)} lists; enqueued {counts.enqueued}, already imported "
        f"{counts.already_imported}, already active {counts.already_active}, "
        f"invalid {counts.invalid}"
    )
    _echo_problems(counts.problems, counts.invalid)


def _import_parcels(postgres_url: str, batch_size: int) -> None:
    engine = create_engine(to_sqlalchemy_url(postgres_url), connect_args={"connect_timeout": 5})
    counts = legacy_import.ParcelImportCounts()
    try:
        with engine.connect() as legacy:
            legacy_import.check_legacy_parcels_table(legacy)
            total = legacy_import.count_legacy_parcels(legacy)
            pages = legacy_import.read_legacy_parcels(legacy, batch_size=batch_size)
            with tqdm(total=total, unit="parcel", desc="parcels", disable=None) as progress:
                for rows in pages:
                    with session_scope() as session:
                        legacy_import.ingest_legacy_parcels(session, rows, counts)
                    progress.update(len(rows))
    finally:
        engine.dispose()
    click.echo(
        f"parcels: {counts.found} found; inserted {counts.inserted}, updated {counts.updated}, "
        f"unchanged {counts.unchanged}, stale {counts.stale}, rejected {counts.rejected}"
    )
    _echo_problems(counts.problems, counts.rejected)


def _echo_problems(problems: list[str], total: int) -> None:
    for problem in problems:
        click.echo(f"  {problem}")
    if total > len(problems):
        click.echo(f"  ... and {total - len(problems)} more")
