"""``POST /internal/heartbeat``: the fleet registry, lease keep-alive and command delivery."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter
from pydantic import BaseModel, Field

from gateway_api.auth import WorkerDep
from gateway_api.deps import SessionDep
from gateway_api.schemas import Int32, Percent, PlatformName
from services.dispatch.fleet import HeartbeatStatus, record_heartbeat
from settings import get_settings

router = APIRouter(prefix="/internal", tags=["workers"])


class HeartbeatIn(BaseModel):
    active_tasks: Int32 = 0
    completed_last_minute: Int32 = 0
    failed_last_minute: Int32 = 0
    platforms: list[PlatformName] = Field(default_factory=list, max_length=200)
    cpu_percent: Percent | None = None
    memory_percent: Percent | None = None


class HeartbeatOut(BaseModel):
    acknowledged: bool
    commands: list[str]


@router.post("/heartbeat")
def post_heartbeat(body: HeartbeatIn, worker: WorkerDep, session: SessionDep) -> HeartbeatOut:
    """Record the worker's status, extend its leases and hand over its queued commands."""
    commands = record_heartbeat(
        session,
        worker.worker_id,
        HeartbeatStatus(**body.model_dump()),
        lease_timeout_s=get_settings().lease_timeout_s,
        now=datetime.now(UTC),
    )
    return HeartbeatOut(acknowledged=True, commands=commands)
