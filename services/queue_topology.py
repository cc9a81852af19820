"""Which queues a worker consumes: every scrape queue of the enabled platforms, then ingest
and maintenance. Platforms are rows, so a new platform needs no code change."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.models import Platform
from tasks.queues import INGEST_QUEUE, MAINTENANCE_QUEUE, scrape_queue_names


def enabled_platform_names(session: Session) -> list[str]:
    query = select(Platform.name).where(Platform.is_enabled).order_by(Platform.name)
    return list(session.execute(query).scalars())


def worker_queue_names(session: Session, *, platforms: list[str] | None = None) -> list[str]:
    """Strict priority order: all p1 queues first, down to p4, then ingest and maintenance."""
    names = platforms if platforms is not None else enabled_platform_names(session)
    return [*scrape_queue_names(names), INGEST_QUEUE, MAINTENANCE_QUEUE]
