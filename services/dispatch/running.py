"""Ledger bookkeeping around a Celery-run scrape: ``queued`` → ``running`` → ``succeeded``.

The claim is the duplicate guard: a message whose row is no longer ``queued`` claims nothing
and is dropped. A running task holds a run lease (fencing token, expiry) like an HTTP lease,
so a worker killed mid-task is noticed by the reaper and its task retried.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from db.models import LEASE_TOKEN_SEQUENCE, ScrapeTask, TaskStatus
from services.dispatch.failures import FailureOutcome, record_failed_attempt


def claim_run(
    session: Session, task_id: uuid.UUID, *, worker_name: str, run_lease_s: float, now: datetime
) -> ScrapeTask | None:
    """Take a queued task for this run; ``None`` means a duplicate delivery (do not run)."""
    return session.scalars(
        update(ScrapeTask)
        .where(ScrapeTask.id == task_id, ScrapeTask.status == TaskStatus.QUEUED.value)
        .values(
            status=TaskStatus.RUNNING.value,
            leased_by=worker_name,
            lease_token=LEASE_TOKEN_SEQUENCE.next_value(),
            lease_expires_at=now + timedelta(seconds=run_lease_s),
            attempt=ScrapeTask.attempt + 1,
            started_at=now,
        )
        .returning(ScrapeTask)
    ).one_or_none()


def finish_run(session: Session, task_id: uuid.UUID, *, lease_token: int, now: datetime) -> bool:
    """``running`` → ``succeeded`` if this run still holds the task (the reaper may have won)."""
    result = session.execute(
        update(ScrapeTask)
        .where(
            ScrapeTask.id == task_id,
            ScrapeTask.status == TaskStatus.RUNNING.value,
            ScrapeTask.lease_token == lease_token,
        )
        .values(status=TaskStatus.SUCCEEDED.value, finished_at=now, lease_expires_at=None)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def fail_run(
    session: Session,
    task_id: uuid.UUID,
    *,
    lease_token: int,
    reason: str,
    message: str,
    is_retryable: bool,
    now: datetime,
) -> FailureOutcome | None:
    """Record this run's failure; ``None`` if the run no longer holds the task."""
    task = session.scalars(
        select(ScrapeTask)
        .where(
            ScrapeTask.id == task_id,
            ScrapeTask.status == TaskStatus.RUNNING.value,
            ScrapeTask.lease_token == lease_token,
        )
        .with_for_update()
    ).one_or_none()
    if task is None:
        return None
    return record_failed_attempt(
        session, task, reason=reason, message=message, retry_suggested=is_retryable, now=now
    )
