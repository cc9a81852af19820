"""The reaper: expired leases and silent workers count as failed attempts.

An attempt that nobody finished is closed like any failure: retried with backoff or
dead-lettered after the last retry, with ``lease_expired`` / ``worker_stale`` as the reason.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from db.models import ScrapeTask, TaskStatus, Worker
from services.dispatch.failures import FailureReason, record_failed_attempt

_HELD = (TaskStatus.LEASED.value, TaskStatus.RUNNING.value)


def reap_expired_leases(session: Session, *, now: datetime, limit: int = 500) -> int:
    """Leases (HTTP) and run leases (Celery) past their expiry; returns how many were reaped."""
    tasks = session.scalars(
        select(ScrapeTask)
        .where(ScrapeTask.status.in_(_HELD), ScrapeTask.lease_expires_at < now)
        .order_by(ScrapeTask.lease_expires_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    for task in tasks:
        expired_at = task.lease_expires_at.isoformat() if task.lease_expires_at else "?"
        record_failed_attempt(
            session,
            task,
            reason=FailureReason.LEASE_EXPIRED.value,
            message=f"{task.status} by {task.leased_by}: lease expired at {expired_at}",
            now=now,
        )
    return len(tasks)


def reap_stale_workers(session: Session, *, now: datetime, stale_s: float, limit: int = 500) -> int:
    """Workers silent longer than ``stale_s`` lose their leases at once; returns tasks reaped."""
    cutoff = now - timedelta(seconds=stale_s)
    stale = select(Worker.worker_id).where(Worker.last_heartbeat_at < cutoff)
    session.execute(
        update(Worker)
        .where(Worker.last_heartbeat_at < cutoff, Worker.stale_since.is_(None))
        .values(stale_since=now)
    )
    tasks = session.scalars(
        select(ScrapeTask)
        .where(ScrapeTask.status == TaskStatus.LEASED.value, ScrapeTask.leased_by.in_(stale))
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    for task in tasks:
        record_failed_attempt(
            session,
            task,
            reason=FailureReason.WORKER_STALE.value,
            message=f"worker {task.leased_by} sent no heartbeat for over {stale_s:.0f}s",
            now=now,
        )
    return len(tasks)
