"""Task outcome figures: attempts finished (with their wait and run times), tasks enqueued,
leases lost, and calls fenced off because the caller no longer holds the lease.

Recorded in Redis (``services.metrics_redis``) so that Celery prefork children and every API
process add to one set of totals, which the API's ``/metrics`` exports. What a transaction
does is noted on its session and written only after it commits: a rolled-back failure or an
enqueue that never happened is not counted. A fenced-off call is counted at once: the refusal
happened whatever becomes of the transaction.
"""

from __future__ import annotations

import enum
import logging
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import redis
from sqlalchemy import event
from sqlalchemy.orm import Session, SessionTransaction

from db.models import ScrapeTask, TaskStatus
from services.metrics_redis import metrics_redis
from services.redis_histograms import LABEL_SEPARATOR, HashIncrements, add_observation

logger = logging.getLogger(__name__)

FINISHED_KEY = "gateway:metrics:tasks_finished"  # "platform|outcome" -> attempts
ENQUEUED_KEY = "gateway:metrics:tasks_enqueued"  # platform -> tasks
WAIT_KEY = "gateway:metrics:task_wait"  # histogram by platform (services.redis_histograms)
RUN_KEY = "gateway:metrics:task_run"  # histogram by platform
LEASES_EXPIRED_KEY = "gateway:metrics:leases_expired"  # "platform|reason" -> attempts
FENCED_OFF_KEY = "gateway:metrics:fenced_off"  # "platform|action" -> refused calls
DUPLICATES_DROPPED_KEY = "gateway:metrics:duplicates_dropped"  # path -> messages
# Seconds from a task's publish to its start: minutes are normal, hours mean a backlog.
WAIT_BUCKETS_S = (1.0, 5.0, 15.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 21600.0)
# Seconds from start to the end of the attempt: a page load takes seconds, a lease 300 s.
RUN_BUCKETS_S = (0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)
# Failure reasons that mean the gateway took the lease back (the holder went silent).
LEASE_LOSS_REASONS = ("lease_expired", "worker_stale", "worker_lost")
_PENDING = "pending_task_metrics"
_SAVEPOINT_MARKS = "pending_task_metrics_marks"
_HELD = (TaskStatus.LEASED.value, TaskStatus.RUNNING.value)


class TaskOutcome(enum.StrEnum):
    SUCCEEDED = "succeeded"
    RETRIED = "retried"
    DEAD = "dead"
    CANCELLED = "cancelled"


class DeliveryPath(enum.StrEnum):
    CELERY = "celery"
    HTTP = "http"


class FencedAction(enum.StrEnum):
    COMPLETE = "complete"
    FAIL = "fail"
    EXTEND = "extend"


@dataclass(frozen=True)
class FinishedAttempt:
    platform: str
    outcome: TaskOutcome
    wait_s: float | None = None  # None: the task never started (cancelled while queued)
    run_s: float | None = None
    reason: str | None = None  # the failure reason of a retried or dead attempt


@dataclass
class PendingFigures:
    attempts: list[FinishedAttempt]
    enqueued: Counter[str]


def attempt_of(
    task: ScrapeTask, outcome: TaskOutcome, *, now: datetime, reason: str | None = None
) -> FinishedAttempt:
    """The figures of the attempt that ``task`` (a ledger row, still held) is closing now.

    A task not held (cancelled while queued or waiting for a retry) has no attempt running:
    its ``started_at`` is an earlier attempt's, already counted.
    """
    if task.started_at is None or task.status not in _HELD:
        return FinishedAttempt(task.platform, outcome, reason=reason)
    return held_attempt(
        task.platform,
        outcome,
        started_at=task.started_at,
        queued_at=task.published_at or task.created_at,
        now=now,
        reason=reason,
    )


def held_attempt(
    platform: str,
    outcome: TaskOutcome,
    *,
    started_at: datetime,
    queued_at: datetime | None,
    now: datetime,
    reason: str | None = None,
) -> FinishedAttempt:
    """The figures of a held attempt (leased or running) that ends now."""
    wait_s = (started_at - queued_at).total_seconds() if queued_at else None
    return FinishedAttempt(platform, outcome, wait_s, (now - started_at).total_seconds(), reason)


def _pending(session: Session) -> PendingFigures:
    pending = session.info.get(_PENDING)
    if pending is None:
        pending = session.info[_PENDING] = PendingFigures([], Counter())
    return pending


def note_attempts_finished(session: Session, attempts: Iterable[FinishedAttempt]) -> None:
    """Count these attempts once the session's transaction commits."""
    _pending(session).attempts.extend(attempts)


def note_attempt_finished(
    session: Session,
    task: ScrapeTask,
    outcome: TaskOutcome,
    *,
    now: datetime,
    reason: str | None = None,
) -> None:
    note_attempts_finished(session, [attempt_of(task, outcome, now=now, reason=reason)])


def note_tasks_enqueued(session: Session, platforms: Iterable[str]) -> None:
    """Count one enqueued task per platform name given, once the transaction commits."""
    _pending(session).enqueued.update(platforms)


# SQLAlchemy reports a savepoint's release as a commit and its rollback as a rollback (the
# session is still in the nested transaction then). Figures wait for the real commit, and a
# rolled-back savepoint drops only what was noted inside it: each savepoint keeps a mark.
@event.listens_for(Session, "after_transaction_create")
def _mark_savepoint(session: Session, transaction: SessionTransaction) -> None:
    if transaction.nested:
        pending = _pending(session)
        marks = session.info.setdefault(_SAVEPOINT_MARKS, [])
        marks.append((len(pending.attempts), Counter(pending.enqueued)))


@event.listens_for(Session, "after_commit")
def _record_after_commit(session: Session) -> None:
    if session.in_nested_transaction():
        _pop_savepoint_mark(session)  # released: its figures wait for the real commit
        return
    session.info.pop(_SAVEPOINT_MARKS, None)
    pending: PendingFigures | None = session.info.pop(_PENDING, None)
    if pending is not None:
        record_figures_safely(metrics_redis(), pending)


@event.listens_for(Session, "after_rollback")
def _forget_after_rollback(session: Session) -> None:
    if session.in_nested_transaction():
        mark = _pop_savepoint_mark(session)
        pending = session.info.get(_PENDING)
        if mark is not None and pending is not None:
            del pending.attempts[mark[0] :]
            pending.enqueued = mark[1]
        return
    session.info.pop(_SAVEPOINT_MARKS, None)
    session.info.pop(_PENDING, None)


def _pop_savepoint_mark(session: Session) -> tuple[int, Counter[str]] | None:
    marks: list[tuple[int, Counter[str]]] = session.info.get(_SAVEPOINT_MARKS, [])
    return marks.pop() if marks else None


def record_figures(client: redis.Redis, pending: PendingFigures) -> None:
    increments = HashIncrements()
    for platform, n in pending.enqueued.items():
        increments.add(ENQUEUED_KEY, platform, n)
    for attempt in pending.attempts:
        increments.add(FINISHED_KEY, _field(attempt.platform, attempt.outcome.value))
        if attempt.reason in LEASE_LOSS_REASONS:
            increments.add(LEASES_EXPIRED_KEY, _field(attempt.platform, attempt.reason))
        if attempt.wait_s is not None:
            add_observation(increments, WAIT_KEY, attempt.platform, attempt.wait_s, WAIT_BUCKETS_S)
        if attempt.run_s is not None and attempt.outcome is not TaskOutcome.CANCELLED:
            add_observation(increments, RUN_KEY, attempt.platform, attempt.run_s, RUN_BUCKETS_S)
    pipe = client.pipeline(transaction=False)
    increments.queue_on(pipe)
    pipe.execute()


def record_figures_safely(client: redis.Redis, pending: PendingFigures) -> None:
    """The ledger is already committed: a Redis outage costs only these figures, logged."""
    if not pending.attempts and not pending.enqueued:
        return
    try:
        record_figures(client, pending)
    except redis.RedisError as exc:
        logger.warning("task outcome figures not recorded: %s", exc)


def record_fenced_off(platform: str, action: FencedAction) -> None:
    """A complete, fail or extend refused because the caller no longer holds the lease."""
    try:
        metrics_redis().hincrby(FENCED_OFF_KEY, _field(platform, action.value), 1)
    except redis.RedisError as exc:
        logger.warning("fenced-off %s not counted: %s", action.value, exc)


def record_duplicates_dropped(path: DeliveryPath, count: int = 1) -> None:
    """Scrape messages dropped because their task was no longer queued: redeliveries after a
    fault, or a re-publish that raced its original. The ledger's guard at work, counted."""
    try:
        metrics_redis().hincrby(DUPLICATES_DROPPED_KEY, path.value, count)
    except redis.RedisError as exc:
        logger.warning("%d dropped duplicate(s) not counted: %s", count, exc)


def _field(*labels: str) -> str:
    return LABEL_SEPARATOR.join(labels)
