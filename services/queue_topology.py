"""Which queues a Celery worker consumes.

Scrape workers take the scrape queues of the enabled platforms they have a scraper for, every
p1 queue first; platforms without a scraper here are left to the HTTP workers. A separate
service worker takes ``ingest`` and ``maintenance``: sharing children with slow scrapes would
delay results, and would let the periodic jobs' messages (which expire after one interval)
expire unrun while every child is busy. Platforms are rows, so a new one needs no code change.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.models import Platform
from scrapers import registered_platforms
from services.queues import INGEST_QUEUE, MAINTENANCE_QUEUE, scrape_queue_names

SERVICE_QUEUES = (INGEST_QUEUE, MAINTENANCE_QUEUE)


def enabled_platform_names(session: Session) -> list[str]:
    query = select(Platform.name).where(Platform.is_enabled).order_by(Platform.name)
    return list(session.execute(query).scalars())


def scraping_platform_names(session: Session) -> list[str]:
    """Enabled platforms this process can scrape; a worker taking others would dead-letter them."""
    registered = set(registered_platforms())
    return [name for name in enabled_platform_names(session) if name in registered]


def scrape_worker_queue_names(session: Session, *, platforms: list[str] | None = None) -> list[str]:
    """Strict priority order: every p1 scrape queue first, down to p4."""
    names = platforms if platforms is not None else scraping_platform_names(session)
    return scrape_queue_names(names)
