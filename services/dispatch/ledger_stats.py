"""Figures read from the ledger and the registry: the metrics and the ledger invariant."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from db.models import ACTIVE_STATUSES, Platform, ScrapeTask, TaskStatus, Worker


@dataclass
class DispatchFigures:
    tasks_by_status: dict[tuple[str, int, str], int] = field(default_factory=dict)
    dead_by_reason: dict[tuple[str, str], int] = field(default_factory=dict)
    workers: dict[str, int] = field(default_factory=dict)
    enabled_platforms: list[str] = field(default_factory=list)  # each gets its zero series
    oldest_queued_at: dict[tuple[str, int], datetime] = field(default_factory=dict)
    ledger: dict[str, int] = field(default_factory=dict)  # ledger_balance's terms
    now: datetime | None = None  # when these figures were read


def count_by_status(session: Session) -> dict[str, int]:
    """Rows per status, every status present (zero when none)."""
    rows = session.execute(select(ScrapeTask.status, func.count()).group_by(ScrapeTask.status))
    counts = {status.value: 0 for status in TaskStatus}
    counts.update({status: int(n) for status, n in rows})
    return counts


def ledger_balance(session: Session) -> dict[str, int]:
    """The invariant's terms: enqueued (rows) = succeeded + dead + cancelled + active."""
    counts = count_by_status(session)
    return {
        "enqueued": sum(counts.values()),
        "succeeded": counts[TaskStatus.SUCCEEDED.value],
        "dead": counts[TaskStatus.DEAD.value],
        "cancelled": counts[TaskStatus.CANCELLED.value],
        "active": sum(counts[s.value] for s in ACTIVE_STATUSES),
    }


@dataclass(frozen=True)
class QueueDepth:
    platform: str
    priority: int
    queued: int
    oldest_queued_at: datetime  # when its longest-waiting task entered the queue


def read_queue_depths(session: Session, *, platform: str | None = None) -> list[QueueDepth]:
    """Queued tasks per (platform, priority) that has any, from the ledger."""
    queued_since = func.min(func.coalesce(ScrapeTask.published_at, ScrapeTask.created_at))
    query = (
        select(ScrapeTask.platform, ScrapeTask.priority, func.count(), queued_since)
        .where(ScrapeTask.status == TaskStatus.QUEUED.value)
        .group_by(ScrapeTask.platform, ScrapeTask.priority)
        .order_by(ScrapeTask.platform, ScrapeTask.priority)
    )
    if platform is not None:
        query = query.where(ScrapeTask.platform == platform)
    return [QueueDepth(p, int(prio), int(n), since) for p, prio, n, since in session.execute(query)]


def oldest_queued_at(session: Session) -> dict[tuple[str, int], datetime]:
    """When the longest-waiting queued task of each (platform, priority) entered its queue."""
    return {(d.platform, d.priority): d.oldest_queued_at for d in read_queue_depths(session)}


def read_dispatch_figures(session: Session, *, now: datetime, stale_s: float) -> DispatchFigures:
    figures = DispatchFigures(now=now)
    figures.enabled_platforms = list(
        session.scalars(select(Platform.name).where(Platform.is_enabled).order_by(Platform.name))
    )
    active = session.execute(
        select(ScrapeTask.platform, ScrapeTask.priority, ScrapeTask.status, func.count())
        .where(ScrapeTask.status.in_(ACTIVE_STATUSES))
        .group_by(ScrapeTask.platform, ScrapeTask.priority, ScrapeTask.status)
    )
    figures.tasks_by_status = {(p, int(prio), s): int(n) for p, prio, s, n in active}
    dead = session.execute(
        select(ScrapeTask.platform, ScrapeTask.last_error_reason, func.count())
        .where(ScrapeTask.status == TaskStatus.DEAD.value)
        .group_by(ScrapeTask.platform, ScrapeTask.last_error_reason)
    )
    figures.dead_by_reason = {(p, r or "unknown"): int(n) for p, r, n in dead}
    figures.oldest_queued_at = oldest_queued_at(session)
    figures.ledger = ledger_balance(session)
    cutoff = now - timedelta(seconds=stale_s)
    state = case(
        (Worker.last_heartbeat_at < cutoff, "stale"),
        (Worker.is_paused, "paused"),
        else_="alive",
    )
    workers = session.execute(select(state, func.count()).group_by(state))
    figures.workers = {"alive": 0, "paused": 0, "stale": 0}
    figures.workers.update({s: int(n) for s, n in workers})
    return figures
