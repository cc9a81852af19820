"""The fleet registry: heartbeats, alive/stale views and operators' queued commands."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from db.models import ScrapeTask, TaskStatus, Worker, WorkerCommand, WorkerCommandKind
from services.dispatch.leases import extend_worker_leases
from services.errors import InvalidInput, NotFound


@dataclass(frozen=True)
class HeartbeatStatus:
    active_tasks: int = 0
    completed_last_minute: int = 0
    failed_last_minute: int = 0
    platforms: Sequence[str] = ()
    cpu_percent: float | None = None
    memory_percent: float | None = None
    task_ids: Sequence[uuid.UUID] | None = None  # the leases held, when the worker says


@dataclass(frozen=True)
class WorkerView:
    worker: Worker
    is_alive: bool
    current_leases: int


def record_heartbeat(
    session: Session,
    worker_id: str,
    status: HeartbeatStatus,
    *,
    lease_timeout_s: float,
    now: datetime,
) -> list[str]:
    """Upsert the registry row, extend the worker's leases while it reports active tasks, and
    deliver its pending commands (oldest first)."""
    values = {
        "active_tasks": status.active_tasks,
        "completed_last_minute": status.completed_last_minute,
        "failed_last_minute": status.failed_last_minute,
        "platforms": list(status.platforms),
        "cpu_percent": status.cpu_percent,
        "memory_percent": status.memory_percent,
        "last_heartbeat_at": now,
        "stale_since": None,
    }
    session.execute(
        insert(Worker)
        .values(worker_id=worker_id, **values)
        .on_conflict_do_update(index_elements=[Worker.worker_id], set_=values)
    )
    # A worker that reports no active tasks (e.g. restarted under the same id) does not keep
    # its old leases alive: they run out and are retried.
    if status.active_tasks > 0 or status.task_ids:
        extend_worker_leases(
            session, worker_id, lease_timeout_s=lease_timeout_s, now=now, only=status.task_ids
        )
    pending = session.scalars(
        update(WorkerCommand)
        .where(WorkerCommand.worker_id == worker_id, WorkerCommand.delivered_at.is_(None))
        .values(delivered_at=now)
        .returning(WorkerCommand)
    ).all()
    return [command.command for command in sorted(pending, key=lambda c: c.id)]


def queue_command(session: Session, worker_id: str, command: str) -> WorkerCommand:
    """Queue pause / resume / shutdown; pause and resume also gate leasing right away."""
    try:
        kind = WorkerCommandKind(command)
    except ValueError as exc:
        choices = ", ".join(k.value for k in WorkerCommandKind)
        raise InvalidInput(f"unknown command {command!r}; choose one of {choices}") from exc
    worker = session.get(Worker, worker_id, with_for_update=True)
    if worker is None:
        raise NotFound(f"worker {worker_id} has never sent a heartbeat")
    if kind in (WorkerCommandKind.PAUSE, WorkerCommandKind.RESUME):
        worker.is_paused = kind is WorkerCommandKind.PAUSE
    row = WorkerCommand(worker_id=worker_id, command=kind.value)
    session.add(row)
    session.flush()
    return row


def list_workers(
    session: Session, *, now: datetime, stale_s: float, is_alive: bool | None = None
) -> list[WorkerView]:
    """Registry rows, newest heartbeat first, with alive/stale and their current leases."""
    leases = (
        select(ScrapeTask.leased_by, func.count().label("n"))
        .where(ScrapeTask.status == TaskStatus.LEASED.value)
        .group_by(ScrapeTask.leased_by)
        .subquery()
    )
    cutoff = now - timedelta(seconds=stale_s)
    query = (
        select(Worker, func.coalesce(leases.c.n, 0))
        .outerjoin(leases, leases.c.leased_by == Worker.worker_id)
        .order_by(Worker.last_heartbeat_at.desc())
    )
    if is_alive is not None:
        alive = Worker.last_heartbeat_at >= cutoff
        query = query.where(alive if is_alive else ~alive)
    return [
        WorkerView(worker, worker.last_heartbeat_at >= cutoff, int(n))
        for worker, n in session.execute(query)
    ]
