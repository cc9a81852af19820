"""HTTP leases on the ledger: claim, complete, fail, extend, all fenced by ``lease_token``.

Only the current holder (same worker id and, when given, the same token) may act on a lease;
anyone else gets a Conflict (409) that does not name the holder, and nothing changes. Worker
ids are bound to credentials (``worker_identity``), so a call without ``lease_token`` is
accepted only from the credential whose worker holds the lease. Completing twice is harmless.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Integer, Table, Uuid, any_, bindparam, func, or_, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session

from db.models import LEASE_TOKEN_SEQUENCE, ScrapeTask, TaskStatus
from services.dispatch.failures import FailureOutcome, record_failed_attempt
from services.dispatch.outcome_metrics import (
    FencedAction,
    TaskOutcome,
    held_attempt,
    note_attempt_finished,
    note_attempts_finished,
    record_fenced_off,
)
from services.dispatch.politeness import note_pushback
from services.errors import Conflict, NotFound


@dataclass(frozen=True)
class CompletionOutcome:
    task_id: uuid.UUID
    was_already_completed: bool


@dataclass(frozen=True)
class LeasedTask:
    """A lease just written: what the worker is handed."""

    id: uuid.UUID
    platform: str
    state: str
    county: str
    parcel_id: str
    url: str | None
    priority: int
    created_at: datetime
    attempt: int
    lease_expires_at: datetime
    lease_token: int


_tasks = cast(Table, ScrapeTask.__table__)
# Built once, with the ids as one array: leasing is the other statement of every poll.
_CLAIM_QUEUED = (
    update(_tasks)
    .where(
        _tasks.c.id == any_(bindparam("claim_ids", type_=postgresql.ARRAY(Uuid))),
        _tasks.c.status == TaskStatus.QUEUED.value,
    )
    .values(
        status=TaskStatus.LEASED.value,
        leased_by=bindparam("claim_by"),
        lease_token=LEASE_TOKEN_SEQUENCE.next_value(),
        lease_expires_at=bindparam("claim_expires_at"),
        attempt=_tasks.c.attempt + 1,
        started_at=bindparam("claim_now"),
    )
    .returning(*(_tasks.c[name] for name in LeasedTask.__dataclass_fields__))
)


def claim_leases(
    session: Session,
    task_ids: Sequence[uuid.UUID],
    *,
    worker_id: str,
    lease_timeout_s: float,
    now: datetime,
) -> list[LeasedTask]:
    """``queued`` → ``leased`` for each id still queued; others (duplicates) are skipped.

    Returns the leases in the order of ``task_ids`` (the order messages were taken).
    """
    if not task_ids:
        return []
    rows = session.connection().execute(
        _CLAIM_QUEUED,
        {
            "claim_ids": list(task_ids),
            "claim_by": worker_id,
            "claim_expires_at": now + timedelta(seconds=lease_timeout_s),
            "claim_now": now,
        },
    )
    leased = [LeasedTask(**row._mapping) for row in rows]
    order = {task_id: i for i, task_id in enumerate(task_ids)}
    return sorted(leased, key=lambda task: order[task.id])


def _locked_task(session: Session, task_id: uuid.UUID) -> ScrapeTask:
    task = session.get(ScrapeTask, task_id, with_for_update=True, populate_existing=True)
    if task is None:
        raise NotFound(f"task {task_id} does not exist")
    return task


def _check_holder(
    task: ScrapeTask, worker_id: str, lease_token: int | None, *, action: FencedAction
) -> None:
    # Never name the holder: a worker id is half of an identity, and the answer goes to
    # whoever asked.
    if task.leased_by != worker_id:
        record_fenced_off(task.platform, action)
        raise Conflict(f"task {task.id} is not leased to worker {worker_id}")
    if lease_token is not None and task.lease_token != lease_token:
        record_fenced_off(task.platform, action)
        raise Conflict(f"lease token {lease_token} of task {task.id} is stale")


def _require_leased(task: ScrapeTask) -> None:
    if task.status != TaskStatus.LEASED.value:
        raise Conflict(f"task {task.id} is {task.status}, not leased")


def note_succeeded(session: Session, rows: Iterable[Sequence[Any]], *, now: datetime) -> None:
    """Count attempts completed by a held-lease statement: rows of (id, platform, started_at,
    queued_at, ...)."""
    note_attempts_finished(
        session,
        [
            held_attempt(
                row[1], TaskOutcome.SUCCEEDED, started_at=row[2], queued_at=row[3], now=now
            )
            for row in rows
        ],
    )


# Built once: the most frequent statement of a busy fleet skips building and cache-keying.
_COMPLETE_ONE_HELD = (
    update(_tasks)
    .where(
        _tasks.c.id == bindparam("held_id"),
        _tasks.c.status == TaskStatus.LEASED.value,
        _tasks.c.leased_by == bindparam("held_by"),
        or_(
            bindparam("held_token", type_=Integer).is_(None),
            _tasks.c.lease_token == bindparam("held_token", type_=Integer),
        ),
    )
    .values(
        status=TaskStatus.SUCCEEDED.value,
        finished_at=bindparam("finished_at_now"),
        lease_expires_at=None,
    )
    .returning(
        _tasks.c.id,
        _tasks.c.platform,
        _tasks.c.started_at,
        func.coalesce(_tasks.c.published_at, _tasks.c.created_at),
    )
)


def complete_lease(
    session: Session,
    task_id: uuid.UUID,
    *,
    worker_id: str,
    lease_token: int | None,
    now: datetime,
) -> CompletionOutcome:
    held = {
        "held_id": task_id,
        "held_by": worker_id,
        "held_token": lease_token,
        "finished_at_now": now,
    }
    completed = session.connection().execute(_COMPLETE_ONE_HELD, held).first()
    if completed is not None:
        note_succeeded(session, [completed], now=now)
        return CompletionOutcome(task_id, False)
    task = _locked_task(session, task_id)
    _check_holder(task, worker_id, lease_token, action=FencedAction.COMPLETE)
    if task.status == TaskStatus.SUCCEEDED.value:
        return CompletionOutcome(task.id, True)
    _require_leased(task)
    note_attempt_finished(session, task, TaskOutcome.SUCCEEDED, now=now)
    task.status = TaskStatus.SUCCEEDED.value
    task.finished_at = now
    task.lease_expires_at = None
    session.flush()
    return CompletionOutcome(task.id, False)


def fail_lease(
    session: Session,
    task_id: uuid.UUID,
    *,
    worker_id: str,
    lease_token: int | None,
    reason: str,
    message: str,
    retry_suggested: bool,
    retry_after_s: float | None = None,
    now: datetime,
) -> FailureOutcome:
    """Record the holder's failed attempt; a site's pushback (reason ``rate_limited`` or
    ``blocked``, or a Retry-After in ``retry_after_s``) lowers its start rate too."""
    task = _locked_task(session, task_id)
    _check_holder(task, worker_id, lease_token, action=FencedAction.FAIL)
    _require_leased(task)
    note_pushback(session, task, reason=reason, retry_after_s=retry_after_s)
    return record_failed_attempt(
        session, task, reason=reason, message=message, retry_suggested=retry_suggested, now=now
    )


def extend_lease(
    session: Session,
    task_id: uuid.UUID,
    *,
    worker_id: str,
    lease_token: int | None,
    extend_s: float,
    now: datetime,
) -> datetime:
    """The lease now ends ``extend_s`` from now; returns the new expiry."""
    task = _locked_task(session, task_id)
    _check_holder(task, worker_id, lease_token, action=FencedAction.EXTEND)
    _require_leased(task)
    task.lease_expires_at = now + timedelta(seconds=extend_s)
    session.flush()
    return task.lease_expires_at


def extend_worker_leases(
    session: Session,
    worker_id: str,
    *,
    lease_timeout_s: float,
    now: datetime,
    only: Sequence[uuid.UUID] | None = None,
) -> int:
    """A heartbeat keeps its worker's leases alive (never shortens one): all of them, or
    ``only`` those it says it holds."""
    expires = now + timedelta(seconds=lease_timeout_s)
    held = [
        ScrapeTask.leased_by == worker_id,
        ScrapeTask.status == TaskStatus.LEASED.value,
        ScrapeTask.lease_expires_at < expires,
    ]
    if only is not None:
        held.append(ScrapeTask.id.in_(list(only)))
    result = session.execute(update(ScrapeTask).where(*held).values(lease_expires_at=expires))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
