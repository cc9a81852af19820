"""Ledger side of publishing: what must be (re-)published, and recording that it was.

Three sources of messages: rows written but never published (the publisher died between
commit and publish), retries that came due, and queued rows whose message vanished from the
broker (kombu's Redis ``basic_get`` pops a message and records it as unacked in two round
trips; a crash in between loses the message).
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from db.models import ScrapeTask, TaskStatus
from services.dispatch.envelopes import ScrapeMessage, scrape_message

QueueKey = tuple[str, int]  # (platform, priority)


def mark_published(session: Session, task_ids: Collection[uuid.UUID], *, now: datetime) -> int:
    """Stamp ``published_at`` on the rows still queued, skipping any another transaction holds.

    That transaction is leasing the task or putting it off, so the stamp no longer matters,
    and waiting for its rows in whatever order the plan takes them could deadlock with it (a
    lease claims some rows, then puts off others). A row left unstamped is published again
    once its grace has passed, and the duplicate message is dropped when taken.
    """
    if not task_ids:
        return 0
    free_queued_rows = (
        select(ScrapeTask.id)
        .where(ScrapeTask.id.in_(list(task_ids)), ScrapeTask.status == TaskStatus.QUEUED.value)
        .with_for_update(skip_locked=True)
    )
    result = session.execute(
        update(ScrapeTask).where(ScrapeTask.id.in_(free_queued_rows)).values(published_at=now)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def find_unpublished(
    session: Session, *, older_than_s: float, now: datetime, limit: int = 5000
) -> list[ScrapeMessage]:
    """Queued rows never published, left alone for ``older_than_s`` (their publisher is gone)."""
    tasks = session.scalars(
        select(ScrapeTask)
        .where(
            ScrapeTask.status == TaskStatus.QUEUED.value,
            ScrapeTask.published_at.is_(None),
            ScrapeTask.updated_at < now - timedelta(seconds=older_than_s),
        )
        .order_by(ScrapeTask.priority, ScrapeTask.created_at)
        .limit(limit)
    )
    return [scrape_message(task) for task in tasks]


def requeue_due_retries(
    session: Session, *, now: datetime, limit: int = 1000
) -> list[ScrapeMessage]:
    """``retry_wait`` rows whose ``due_at`` has passed become ``queued`` (unpublished)."""
    due = (
        select(ScrapeTask.id)
        .where(ScrapeTask.status == TaskStatus.RETRY_WAIT.value, ScrapeTask.due_at <= now)
        .order_by(ScrapeTask.due_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    tasks = session.scalars(
        update(ScrapeTask)
        .where(ScrapeTask.id.in_(due))
        .values(
            status=TaskStatus.QUEUED.value,
            due_at=None,
            published_at=None,
            leased_by=None,
            lease_expires_at=None,
        )
        .returning(ScrapeTask)
    ).all()
    return [scrape_message(task) for task in tasks]


def count_published_queued(session: Session, *, published_before: datetime) -> dict[QueueKey, int]:
    """Still-queued rows published before the cutoff, per (platform, priority).

    Each should have a message in its queue. ``published_at`` is stamped after the send, so
    a row stamped before the cutoff had its message sent before it.
    """
    rows = session.execute(
        select(ScrapeTask.platform, ScrapeTask.priority, func.count())
        .where(
            ScrapeTask.status == TaskStatus.QUEUED.value,
            ScrapeTask.published_at <= published_before,
        )
        .group_by(ScrapeTask.platform, ScrapeTask.priority)
    )
    return {(platform, int(priority)): int(n) for platform, priority, n in rows}


def find_vanished(
    session: Session,
    *,
    expected: dict[QueueKey, int],
    depths: dict[QueueKey, int],
    grace_s: float,
    now: datetime,
) -> list[ScrapeMessage]:
    """Where a queue holds fewer messages than its queued rows, the oldest rows lost theirs.

    Messages leave a queue oldest first, so the rows missing a message are the oldest ones.
    Rows published within ``grace_s`` are never suspected (a lease may be under way). A false
    suspicion costs only a duplicate message, which the ledger guard drops.
    """
    messages: list[ScrapeMessage] = []
    for (platform, priority), count in expected.items():
        missing = count - depths.get((platform, priority), 0)
        if missing <= 0:
            continue
        tasks = session.scalars(
            select(ScrapeTask)
            .where(
                ScrapeTask.status == TaskStatus.QUEUED.value,
                ScrapeTask.platform == platform,
                ScrapeTask.priority == priority,
                ScrapeTask.published_at < now - timedelta(seconds=grace_s),
            )
            .order_by(ScrapeTask.published_at)
            .limit(missing)
        )
        messages.extend(scrape_message(task) for task in tasks)
    return messages
