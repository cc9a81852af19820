"""Dead letters: list, inspect, re-drive (rate-capped) and purge.

A dead letter is a ledger row in status ``dead``. Re-drive resets its attempts and puts it
in ``retry_wait`` with due times spaced by the rate cap, so the periodic re-publisher feeds
them to the queues at that pace. Purge moves them to ``cancelled``: the ledger keeps its
accounting (enqueued = succeeded + dead + cancelled + active) and the history.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, and_, exists, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from db.models import ACTIVE_STATUSES, ACTIVE_STATUSES_SQL, ScrapeTask, TaskStatus
from services.errors import Conflict, InvalidInput, NotFound

MAX_PAGE = 500


@dataclass(frozen=True)
class DeadLetterFilter:
    task_ids: Sequence[uuid.UUID] = ()
    platform: str | None = None
    reason: str | None = None
    older_than_s: float | None = None
    newer_than_s: float | None = None

    def is_empty(self) -> bool:
        return not self.task_ids and all(
            v is None for v in (self.platform, self.reason, self.older_than_s, self.newer_than_s)
        )


@dataclass
class RedriveReport:
    redriven: list[uuid.UUID] = field(default_factory=list)
    skipped_active: list[uuid.UUID] = field(default_factory=list)
    first_due_at: datetime | None = None
    last_due_at: datetime | None = None


def _dead(filters: DeadLetterFilter, now: datetime) -> Select[Any]:
    query = select(ScrapeTask).where(ScrapeTask.status == TaskStatus.DEAD.value)
    if filters.task_ids:
        query = query.where(ScrapeTask.id.in_(list(filters.task_ids)))
    if filters.platform is not None:
        query = query.where(ScrapeTask.platform == filters.platform)
    if filters.reason is not None:
        query = query.where(ScrapeTask.last_error_reason == filters.reason)
    if filters.older_than_s is not None:
        query = query.where(ScrapeTask.finished_at < now - timedelta(seconds=filters.older_than_s))
    if filters.newer_than_s is not None:
        query = query.where(ScrapeTask.finished_at >= now - timedelta(seconds=filters.newer_than_s))
    return query


def list_dead_letters(
    session: Session, filters: DeadLetterFilter, *, now: datetime, limit: int = 100, offset: int = 0
) -> list[ScrapeTask]:
    """Newest first."""
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidInput(f"limit must be between 1 and {MAX_PAGE}")
    query = _dead(filters, now).order_by(ScrapeTask.finished_at.desc(), ScrapeTask.id)
    return list(session.scalars(query.limit(limit).offset(offset)))


def get_dead_letter(session: Session, task_id: uuid.UUID) -> ScrapeTask:
    task = session.get(ScrapeTask, task_id)
    if task is None or task.status != TaskStatus.DEAD.value:
        raise NotFound(f"dead letter {task_id} does not exist")
    return task


def redrive_dead_letters(
    session: Session,
    filters: DeadLetterFilter,
    *,
    now: datetime,
    limit: int,
    rate_per_s: float,
) -> RedriveReport:
    """Give up to ``limit`` dead letters a fresh set of attempts, at most ``rate_per_s`` a second.

    A dead letter whose parcel already has an active task (enqueued again meanwhile) is skipped.
    """
    if filters.is_empty():
        raise InvalidInput("name task ids or at least one filter to re-drive")
    if rate_per_s <= 0:
        raise InvalidInput("rate_per_s must be positive")
    tasks = session.scalars(
        _dead(filters, now)
        .order_by(ScrapeTask.finished_at, ScrapeTask.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    report = RedriveReport()
    planned: dict[uuid.UUID, datetime] = {}
    active_keys = _active_identities(session, tasks)
    for task in tasks:
        key = (task.platform, task.state, task.county, task.parcel_key)
        if key in active_keys:
            report.skipped_active.append(task.id)
            continue
        active_keys.add(key)
        planned[task.id] = now + timedelta(seconds=len(planned) / rate_per_s)
    redriven = _reset_for_redrive(session, planned)
    for task_id, due_at in planned.items():
        if task_id not in redriven:  # enqueued again since the check above
            report.skipped_active.append(task_id)
            continue
        report.redriven.append(task_id)
        report.first_due_at = report.first_due_at or due_at
        report.last_due_at = due_at
    for task in tasks:
        session.expire(task)  # changed by SQL, not through the loaded object
    return report


# Fresh attempts, the error history kept; the re-publisher sends each at its ``due_at``.
# NOT EXISTS skips a row whose parcel has an active task (a twin enqueued since the check).
_REDRIVE = text(f"""
UPDATE scrape_tasks t
SET status = '{TaskStatus.RETRY_WAIT.value}', attempt = 0, due_at = v.due_at,
    finished_at = NULL, leased_by = NULL, lease_expires_at = NULL, updated_at = now()
FROM unnest(CAST(:ids AS uuid[]), CAST(:due_ats AS timestamptz[])) AS v(id, due_at)
WHERE t.id = v.id AND t.status = '{TaskStatus.DEAD.value}' AND NOT EXISTS (
    SELECT 1 FROM scrape_tasks o
    WHERE o.platform = t.platform AND o.state = t.state AND o.county = t.county
        AND o.parcel_key = t.parcel_key AND o.status IN ({ACTIVE_STATUSES_SQL})
)
RETURNING t.id
""")
_ACTIVE_INDEX = "uq_scrape_tasks_active_parcel"
_REDRIVE_TRIES = 3


def _reset_for_redrive(session: Session, planned: dict[uuid.UUID, datetime]) -> set[uuid.UUID]:
    """The ids actually re-driven.

    A twin still being inserted is invisible to NOT EXISTS; the unique index then waits for
    it and fails the statement once it commits. The statement is rolled back to a savepoint
    and run again, and then sees the committed twin.
    """
    if not planned:
        return set()
    params = {"ids": [str(i) for i in planned], "due_ats": list(planned.values())}
    session.flush()
    for _ in range(_REDRIVE_TRIES):
        try:
            with session.begin_nested():
                return {uuid.UUID(str(i)) for i in session.scalars(_REDRIVE, params)}
        except IntegrityError as exc:
            if _ACTIVE_INDEX not in str(exc.orig):
                raise
    raise Conflict("the re-drive kept racing enqueues of the same parcels; run it again")


def _active_identities(
    session: Session, tasks: Sequence[ScrapeTask]
) -> set[tuple[str, str, str, str]]:
    if not tasks:
        return set()
    other = aliased(ScrapeTask)
    ids = [task.id for task in tasks]
    rows = session.execute(
        select(ScrapeTask.platform, ScrapeTask.state, ScrapeTask.county, ScrapeTask.parcel_key)
        .where(ScrapeTask.id.in_(ids))
        .where(
            exists().where(
                and_(
                    other.platform == ScrapeTask.platform,
                    other.state == ScrapeTask.state,
                    other.county == ScrapeTask.county,
                    other.parcel_key == ScrapeTask.parcel_key,
                    other.status.in_(ACTIVE_STATUSES),
                )
            )
        )
    )
    return {(r[0], r[1], r[2], r[3]) for r in rows}


def purge_dead_letters(
    session: Session, filters: DeadLetterFilter, *, now: datetime, purge_all: bool = False
) -> int:
    """Dead letters matching the filter become ``cancelled``; returns how many."""
    if filters.is_empty() and not purge_all:
        raise InvalidInput("name task ids or at least one filter, or purge everything explicitly")
    doomed = _dead(filters, now).with_only_columns(ScrapeTask.id).scalar_subquery()
    result = session.execute(
        update(ScrapeTask)
        .where(ScrapeTask.id.in_(doomed), ScrapeTask.status == TaskStatus.DEAD.value)
        .values(status=TaskStatus.CANCELLED.value, finished_at=now)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
