"""``/admin/workers``: the fleet registry and operators' commands to workers."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Path
from pydantic import BaseModel
from sqlalchemy.orm import Session

from gateway_api.api_docs import ADMIN_ERRORS, error_responses
from gateway_api.auth import AdminDep
from gateway_api.deps import SessionDep
from gateway_api.schemas import Text
from services.dispatch.fleet import list_workers, queue_command
from settings import get_settings

router = APIRouter(prefix="/admin/workers", tags=["admin"], responses=ADMIN_ERRORS)


class WorkerOut(BaseModel):
    worker_id: str
    state: str
    is_paused: bool
    platforms: list[str]
    active_tasks: int
    current_leases: int
    completed_last_minute: int
    failed_last_minute: int
    cpu_percent: float | None
    memory_percent: float | None
    last_heartbeat_at: datetime
    first_seen_at: datetime


class WorkerList(BaseModel):
    workers: list[WorkerOut]


class CommandIn(BaseModel):
    command: Literal["pause", "resume", "shutdown"]


class CommandOut(BaseModel):
    id: int
    worker_id: str
    command: str
    created_at: datetime


@router.get(
    "",
    summary="List workers",
    responses=error_responses(422),
)
def list_fleet(
    _: AdminDep, session: SessionDep, state: Literal["alive", "stale"] | None = None
) -> WorkerList:
    """Workers known by their heartbeats, alive or stale, with their load and leases."""
    return build_worker_list(
        session, now=datetime.now(UTC), stale_s=get_settings().heartbeat_stale_s, state=state
    )


def build_worker_list(
    session: Session, *, now: datetime, stale_s: float, state: str | None
) -> WorkerList:
    views = list_workers(
        session, now=now, stale_s=stale_s, is_alive=None if state is None else state == "alive"
    )
    return WorkerList(
        workers=[
            WorkerOut(
                worker_id=v.worker.worker_id,
                state="alive" if v.is_alive else "stale",
                is_paused=v.worker.is_paused,
                platforms=v.worker.platforms,
                active_tasks=v.worker.active_tasks,
                current_leases=v.current_leases,
                completed_last_minute=v.worker.completed_last_minute,
                failed_last_minute=v.worker.failed_last_minute,
                cpu_percent=v.worker.cpu_percent,
                memory_percent=v.worker.memory_percent,
                last_heartbeat_at=v.worker.last_heartbeat_at,
                first_seen_at=v.worker.first_seen_at,
            )
            for v in views
        ]
    )


@router.post(
    "/{worker_id}/commands",
    status_code=201,
    summary="Queue a command for a worker",
    responses=error_responses(404, 413, 422),
)
def post_worker_command(
    worker_id: Annotated[Text, Path(max_length=128)],
    body: CommandIn,
    _: AdminDep,
    session: SessionDep,
) -> CommandOut:
    """Queue pause / resume / shutdown; the worker's next heartbeat receives it."""
    command = queue_command(session, worker_id, body.command)
    return CommandOut(
        id=command.id,
        worker_id=command.worker_id,
        command=command.command,
        created_at=command.created_at,
    )
