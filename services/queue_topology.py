"""Which queues a Celery worker consumes: ingest and maintenance, then the scrape queues of the
enabled platforms it has a scraper for. Platforms are rows, so a new platform needs no code
change; platforms without a scraper here are left to the HTTP workers."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.models import Platform
from scrapers import registered_platforms
from tasks.queues import INGEST_QUEUE, MAINTENANCE_QUEUE, scrape_queue_names


def enabled_platform_names(session: Session) -> list[str]:
    query = select(Platform.name).where(Platform.is_enabled).order_by(Platform.name)
    return list(session.execute(query).scalars())


def scraping_platform_names(session: Session) -> list[str]:
    """Enabled platforms this process can scrape; a worker taking others would dead-letter them."""
    registered = set(registered_platforms())
    return [name for name in enabled_platform_names(session) if name in registered]


def worker_queue_names(session: Session, *, platforms: list[str] | None = None) -> list[str]:
    """In the order a worker drains them: results and periodic jobs first (a worker that drained
    the scrape queues first would leave results and the lease reaper waiting behind the whole
    backlog), then every p1 scrape queue, down to p4."""
    names = platforms if platforms is not None else scraping_platform_names(session)
    return [INGEST_QUEUE, MAINTENANCE_QUEUE, *scrape_queue_names(names)]
