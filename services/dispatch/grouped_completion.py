"""Many completes in one transaction: a worker's batch complete, and the single completes of
many workers that the API gathers into a group (a group commit).

A busy fleet sends one ``complete`` per task. The API gathers the calls that arrive while an
earlier group is being written and writes them together: the held leases in one statement,
the rest checked one by one, so each call gets the answer it would have had alone
(``complete_lease``).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from psycopg2.errors import DeadlockDetected, LockNotAvailable
from sqlalchemy import DateTime, Integer, String, Uuid, column, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from db.models import ScrapeTask, TaskStatus
from db.session import session_scope
from services.dispatch.leases import CompletionOutcome, complete_lease, note_succeeded
from services.errors import ServiceError

GROUP_LOCK_TIMEOUT_S = 2.0
_SET_LOCK_TIMEOUT = text("SELECT set_config('lock_timeout', :timeout, true)")
_ONE_CALLS_TROUBLE = (DeadlockDetected, LockNotAvailable)


@dataclass(frozen=True)
class CompleteCall:
    task_id: uuid.UUID
    worker_id: str
    lease_token: int | None


CompleteAnswer = CompletionOutcome | ServiceError


@dataclass(frozen=True)
class BatchItemError:
    task_id: uuid.UUID
    code: str
    message: str


# Each call's (task, worker, token) travels as one element of three arrays. A task named twice
# is updated once (the first matching call wins; the others find it done, as they would alone).
# The rows are locked in id order before any is updated, so two groups, or a group and a batch,
# cannot deadlock over the same tasks.
_COMPLETE_HELD_GROUP = (
    text(
        f"UPDATE {ScrapeTask.__tablename__} AS t"
        " SET status = :succeeded, finished_at = :now, lease_expires_at = NULL,"
        " updated_at = now()"
        f" FROM (SELECT id FROM {ScrapeTask.__tablename__}"
        " WHERE id = ANY(CAST(:ids AS uuid[])) ORDER BY id FOR UPDATE) AS locked,"
        " unnest(CAST(:ids AS uuid[]), CAST(:workers AS text[]), CAST(:tokens AS integer[]))"
        " AS c(id, worker_id, lease_token)"
        " WHERE t.id = locked.id AND t.id = c.id AND t.status = :leased"
        " AND t.leased_by = c.worker_id"
        " AND (c.lease_token IS NULL OR t.lease_token = c.lease_token)"
        " RETURNING t.id, t.platform, t.started_at, coalesce(t.published_at, t.created_at),"
        " t.leased_by, t.lease_token"
    )
    .bindparams(succeeded=TaskStatus.SUCCEEDED.value, leased=TaskStatus.LEASED.value)
    .columns(
        column("id", Uuid),
        column("platform", String),
        column("started_at", DateTime(timezone=True)),
        column("queued_at", DateTime(timezone=True)),
        column("leased_by", String),
        column("lease_token", Integer),
    )
)


def complete_each(
    session: Session, calls: Sequence[CompleteCall], *, now: datetime
) -> list[CompleteAnswer]:
    """Complete each call's lease; the answers are in the order of ``calls``, a refused call's
    answer is its error (``NotFound``, ``Conflict``), which changed nothing."""
    if not calls:
        return []
    rows = session.execute(
        _COMPLETE_HELD_GROUP,
        {
            "ids": [str(call.task_id) for call in calls],
            "workers": [call.worker_id for call in calls],
            "tokens": [call.lease_token for call in calls],
            "now": now,
        },
    ).all()
    note_succeeded(session, rows, now=now)
    held = {row.id: (row.leased_by, row.lease_token) for row in rows}
    answers: list[CompleteAnswer] = []
    for call in calls:
        if _was_completed_for(call, held):
            del held[call.task_id]  # a repeat of the task in this group finds it done
            answers.append(CompletionOutcome(call.task_id, False))
            continue
        try:
            answers.append(
                complete_lease(
                    session,
                    call.task_id,
                    worker_id=call.worker_id,
                    lease_token=call.lease_token,
                    now=now,
                )
            )
        except ServiceError as exc:
            answers.append(exc)
    return answers


def _was_completed_for(call: CompleteCall, held: dict[uuid.UUID, tuple[str, int | None]]) -> bool:
    """The group's statement completed this call's task under this call's own lease."""
    if call.task_id not in held:
        return False
    worker_id, token = held[call.task_id]
    return worker_id == call.worker_id and call.lease_token in (None, token)


def complete_leases(
    session: Session,
    items: Sequence[tuple[uuid.UUID, int | None]],
    *,
    worker_id: str,
    now: datetime,
) -> tuple[list[CompletionOutcome], list[BatchItemError]]:
    """A worker's batch complete: each item succeeds or fails on its own."""
    if not items:
        return [], []
    calls = [CompleteCall(task_id, worker_id, token) for task_id, token in items]
    done: list[CompletionOutcome] = []
    errors: list[BatchItemError] = []
    for answer, (task_id, _) in zip(complete_each(session, calls, now=now), items, strict=True):
        if isinstance(answer, ServiceError):
            errors.append(BatchItemError(task_id, answer.code, answer.message))
        else:
            done.append(answer)
    return done, errors


def write_completes(
    calls: Sequence[CompleteCall], *, group_lock_timeout_s: float = GROUP_LOCK_TIMEOUT_S
) -> list[CompleteAnswer]:
    """``complete_each`` in a transaction of its own. A group (more than one call) waits at
    most ``group_lock_timeout_s`` for a row lock held elsewhere (a fail, the reaper, an
    operator); past that it fails as a whole, and ``is_one_calls_trouble`` says so. A call
    alone waits as long as it takes, as it always has."""
    with session_scope() as session:
        if len(calls) > 1:
            timeout = f"{round(group_lock_timeout_s * 1000)}ms"
            session.execute(_SET_LOCK_TIMEOUT, {"timeout": timeout})
        return complete_each(session, calls, now=datetime.now(UTC))


def is_one_calls_trouble(exc: Exception) -> bool:
    """A group's failure that comes from the rows it names (a lock held elsewhere, a deadlock
    PostgreSQL broke), not from the database: each call is worth writing again alone, where it
    waits for its row as long as it would have without the group."""
    return isinstance(exc, DBAPIError) and isinstance(exc.orig, _ONE_CALLS_TROUBLE)
