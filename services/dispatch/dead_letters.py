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

from sqlalchemy import Select, and_, exists, select, update
from sqlalchemy.orm import Session, aliased

from db.models import ACTIVE_STATUSES, ScrapeTask, TaskStatus
from services.errors import InvalidInput, NotFound

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
    active_keys = _active_identities(session, tasks)
    for task in tasks:
        key = (task.platform, task.state, task.county, task.parcel_key)
        if key in active_keys:
            report.skipped_active.append(task.id)
            continue
        active_keys.add(key)
        due_at = now + timedelta(seconds=len(report.redriven) / rate_per_s)
        _reset_for_redrive(task, due_at)
        report.redriven.append(task.id)
        report.first_due_at = report.first_due_at or due_at
        report.last_due_at = due_at
    session.flush()
    return report


def _reset_for_redrive(task: ScrapeTask, due_at: datetime) -> None:
    """Fresh attempts; the error history stays. The re-publisher sends it at ``due_at``."""
    task.status = TaskStatus.RETRY_WAIT.value
    task.attempt = 0
    task.due_at = due_at
    task.finished_at = None
    task.leased_by = None
    task.lease_expires_at = None


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
