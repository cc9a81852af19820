"""``gatewayctl queues``: the comma list a worker passes to ``celery worker -Q``."""

from __future__ import annotations

import click

from db.session import session_scope
from services.queue_topology import worker_queue_names


@click.command("queues")
@click.option("--platform", "platforms", multiple=True, help="Only these platforms.")
def show_queues(platforms: tuple[str, ...]) -> None:
    """Print the queues a worker should consume, highest priority first."""
    with session_scope() as session:
        names = worker_queue_names(session, platforms=list(platforms) or None)
    click.echo(",".join(names))
