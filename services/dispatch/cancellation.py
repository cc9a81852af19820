"""Cancelling a task: any active task can be cancelled; its messages are then dropped."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy.orm import Session

from db.models import ACTIVE_STATUSES, ScrapeTask, TaskStatus
from services.dispatch.outcome_metrics import TaskOutcome, note_attempt_finished
from services.errors import Conflict, NotFound


def cancel_task(session: Session, task_id: uuid.UUID, *, now: datetime) -> ScrapeTask:
    """``queued`` / ``retry_wait`` / ``leased`` / ``running`` → ``cancelled``.

    A holder's later complete or fail gets 409; a message still in a queue finds the row no
    longer queued and is dropped; a Celery run in progress cannot mark it succeeded.
    """
    task = session.get(ScrapeTask, task_id, with_for_update=True)
    if task is None:
        raise NotFound(f"task {task_id} does not exist")
    if task.status not in ACTIVE_STATUSES:
        raise Conflict(f"task {task_id} is already {task.status}")
    note_attempt_finished(session, task, TaskOutcome.CANCELLED, now=now)
    task.status = TaskStatus.CANCELLED.value
    task.finished_at = now
    task.lease_expires_at = None
    task.due_at = None
    session.flush()
    return task
