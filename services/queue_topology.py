"""Which queues a Celery worker consumes: the scrape queues of the enabled platforms it has a
scraper for, then ingest and maintenance. Platforms are rows, so a new platform needs no code
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
    """Strict priority order: all p1 queues first, down to p4, then ingest and maintenance."""
    names = platforms if platforms is not None else scraping_platform_names(session)
    return [*scrape_queue_names(names), INGEST_QUEUE, MAINTENANCE_QUEUE]
