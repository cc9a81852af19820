"""Ledger bookkeeping around a Celery-run scrape: ``queued`` → ``running``, or a failure.

The claim is the duplicate guard: a message whose row is no longer ``queued`` claims nothing
and is dropped. A running task holds a run lease (fencing token, expiry) like an HTTP lease,
so a worker killed mid-task is noticed by the reaper and its task retried. The lease is
short and renewed by the node's main process while the run is active (``tasks.run_leases``);
a run that Celery terminates is closed at once (``fail_terminated_run``). A run that
succeeds is finished by the ingest of its result (``services.dispatch.completion``): the task
is ``succeeded`` only once its result is written or recorded as a reject.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from db.models import LEASE_TOKEN_SEQUENCE, ScrapeTask, TaskStatus
from services.dispatch.cancellation import cancel_task
from services.dispatch.failures import FailureOutcome, FailureReason, record_failed_attempt
from services.dispatch.politeness import note_pushback


def claim_run(
    session: Session,
    task_id: uuid.UUID,
    *,
    worker_name: str,
    run_lease_s: float,
    is_redelivery: bool = False,
    lost_holders: Collection[str] = (),
    now: datetime,
) -> ScrapeTask | None:
    """Take the task for this run; ``None`` means do not run (a duplicate, or dead now).

    A ``queued`` row is taken. A ``running`` row is taken over only when its run is known to
    be lost: its run lease expired, or this is a redelivery to the very node that ran it (its
    pool child died and the message was handed back: ``task_reject_on_worker_lost``), or its
    holder is among ``lost_holders`` (nodes the caller found dead). The lost run counts as a
    failed attempt; the retry runs now, on this delivery.
    """
    claimed = session.scalars(
        update(ScrapeTask)
        .where(ScrapeTask.id == task_id, ScrapeTask.status == TaskStatus.QUEUED.value)
        .values(
            status=TaskStatus.RUNNING.value,
            leased_by=worker_name,
            lease_token=LEASE_TOKEN_SEQUENCE.next_value(),
            lease_expires_at=now + timedelta(seconds=run_lease_s),
            attempt=ScrapeTask.attempt + 1,
            started_at=now,
            due_at=None,
        )
        .returning(ScrapeTask),
        execution_options={"populate_existing": True},
    ).one_or_none()
    if claimed is not None:  # the common case, in one statement
        return claimed
    task = session.scalars(
        select(ScrapeTask).where(ScrapeTask.id == task_id).with_for_update()
    ).one_or_none()
    if task is None:
        return None
    if task.status == TaskStatus.RUNNING.value and (
        _is_lost_run(task, worker_name, is_redelivery, now) or task.leased_by in lost_holders
    ):
        outcome = record_failed_attempt(
            session,
            task,
            reason=FailureReason.WORKER_LOST.value,
            message=f"the run on {task.leased_by} was lost",
            now=now,
        )
        if outcome.moved_to_dlq:
            return None
    elif task.status != TaskStatus.QUEUED.value:
        return None
    task.status = TaskStatus.RUNNING.value
    task.leased_by = worker_name
    task.lease_token = session.scalar(select(LEASE_TOKEN_SEQUENCE.next_value()))
    task.lease_expires_at = now + timedelta(seconds=run_lease_s)
    task.attempt += 1
    task.started_at = now
    task.due_at = None
    session.flush()
    return task


def _is_lost_run(task: ScrapeTask, worker_name: str, is_redelivery: bool, now: datetime) -> bool:
    if task.lease_expires_at is not None and task.lease_expires_at < now:
        return True
    return is_redelivery and task.leased_by == worker_name


def running_holder(session: Session, task_id: uuid.UUID) -> str | None:
    """The node running the task, if it is running."""
    return session.scalar(
        select(ScrapeTask.leased_by).where(
            ScrapeTask.id == task_id, ScrapeTask.status == TaskStatus.RUNNING.value
        )
    )


def fail_run(
    session: Session,
    task_id: uuid.UUID,
    *,
    lease_token: int,
    reason: str,
    message: str,
    is_retryable: bool,
    retry_after_s: float | None = None,
    now: datetime,
) -> FailureOutcome | None:
    """Record this run's failure; ``None`` if the run no longer holds the task. A site's
    pushback (reason or ``retry_after_s``) lowers its start rate."""
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
    note_pushback(session, task, reason=reason, retry_after_s=retry_after_s)
    return record_failed_attempt(
        session, task, reason=reason, message=message, retry_suggested=is_retryable, now=now
    )


def renew_run_leases(
    session: Session,
    task_ids: Collection[uuid.UUID],
    *,
    worker_name: str,
    run_lease_s: float,
    now: datetime,
) -> int:
    """Push back the run leases of the tasks ``worker_name`` is running; returns rows renewed.

    One statement for the whole node. Only rows still ``running`` on this node are touched:
    a run already reaped, failed, finished or taken over elsewhere keeps what it has.
    """
    if not task_ids:
        return 0
    result = session.execute(
        update(ScrapeTask)
        .where(
            ScrapeTask.id.in_(list(task_ids)),
            ScrapeTask.status == TaskStatus.RUNNING.value,
            ScrapeTask.leased_by == worker_name,
        )
        .values(lease_expires_at=now + timedelta(seconds=run_lease_s))
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0))


def fail_terminated_run(
    session: Session,
    task_id: uuid.UUID,
    *,
    worker_name: str,
    reason: str,
    message: str,
    is_retryable: bool = True,
    now: datetime,
) -> FailureOutcome | None:
    """Close the run that Celery on ``worker_name`` terminated as a failed attempt at once.

    ``None`` if the task is not running on that node (already closed, or never claimed).
    The node's main process knows the task id, not the lease token: the node is the fence.
    """
    task = _running_on(session, task_id, worker_name)
    if task is None:
        return None
    return record_failed_attempt(
        session, task, reason=reason, message=message, retry_suggested=is_retryable, now=now
    )


def cancel_revoked_run(
    session: Session, task_id: uuid.UUID, *, worker_name: str, now: datetime
) -> ScrapeTask | None:
    """An operator revoked the run with ``terminate=True``: the task is ``cancelled``, as the
    operator meant (every node now drops that task id, so a retry could never run)."""
    task = _running_on(session, task_id, worker_name)
    if task is None:
        return None
    return cancel_task(session, task.id, now=now)


def _running_on(session: Session, task_id: uuid.UUID, worker_name: str) -> ScrapeTask | None:
    return session.scalars(
        select(ScrapeTask)
        .where(
            ScrapeTask.id == task_id,
            ScrapeTask.status == TaskStatus.RUNNING.value,
            ScrapeTask.leased_by == worker_name,
        )
        .with_for_update()
    ).one_or_none()
