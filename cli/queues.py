"""``gatewayctl queues``: the comma list a worker passes to ``celery worker -Q``."""

from __future__ import annotations

import click

from db.session import session_scope
from services.queue_topology import SERVICE_QUEUES, scrape_worker_queue_names


@click.command("queues")
@click.option("--platform", "platforms", multiple=True, help="Only these platforms.")
@click.option("--service", "is_service", is_flag=True, help="The service worker's queues instead.")
def show_queues(platforms: tuple[str, ...], is_service: bool) -> None:
    """Print the scrape queues a scrape worker should consume, highest priority first."""
    if is_service:
        click.echo(",".join(SERVICE_QUEUES))
        return
    with session_scope() as session:
        names = scrape_worker_queue_names(session, platforms=list(platforms) or None)
    if not names:
        raise click.ClickException("no enabled platform has a scraper in this codebase")
    click.echo(",".join(names))
