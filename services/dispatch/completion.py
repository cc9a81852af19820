"""Marking ledger tasks as succeeded when their results are ingested."""

from __future__ import annotations

import uuid
from collections.abc import Collection

from sqlalchemy import func, update
from sqlalchemy.orm import Session

from db.models import ACTIVE_STATUSES, ScrapeTask, TaskStatus


def mark_tasks_succeeded(session: Session, task_ids: Collection[uuid.UUID]) -> int:
    """Active tasks among ``task_ids`` become ``succeeded``; finished ones are left alone.

    Idempotent: a redelivered result finds its task already succeeded and changes nothing.
    Returns how many rows changed.
    """
    if not task_ids:
        return 0
    result = session.execute(
        update(ScrapeTask)
        .where(ScrapeTask.id.in_(list(task_ids)), ScrapeTask.status.in_(ACTIVE_STATUSES))
        .values(
            status=TaskStatus.SUCCEEDED.value,
            finished_at=func.now(),
            lease_expires_at=None,
            due_at=None,
        )
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
