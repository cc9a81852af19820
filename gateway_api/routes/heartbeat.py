"""``POST /internal/heartbeat``: the fleet registry, lease keep-alive and command delivery."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from gateway_api import worker_examples
from gateway_api.api_docs import WORKER_ERRORS, error_responses
from gateway_api.auth import WorkerDep
from gateway_api.deps import SessionDep
from gateway_api.schemas import Int32, Percent, PlatformName
from services.dispatch.fleet import HeartbeatStatus, record_heartbeat
from settings import get_settings

router = APIRouter(prefix="/internal", tags=["workers"], responses=WORKER_ERRORS)
MAX_HELD_TASKS = 1000


class HeartbeatIn(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [worker_examples.HEARTBEAT]})

    active_tasks: Int32 = 0
    completed_last_minute: Int32 = 0
    failed_last_minute: Int32 = 0
    platforms: list[PlatformName] = Field(default_factory=list, max_length=200)
    cpu_percent: Percent | None = None
    memory_percent: Percent | None = None
    task_ids: list[uuid.UUID] | None = Field(
        default=None,
        max_length=MAX_HELD_TASKS,
        description="The tasks this worker holds now (opt-in): when given, only these leases"
        " are extended, so a lease whose answer never reached the worker runs out and is"
        " retried instead of being kept alive by every heartbeat",
    )


class HeartbeatOut(BaseModel):
    acknowledged: bool
    commands: list[str]


@router.post(
    "/heartbeat",
    summary="Send a heartbeat",
    responses=error_responses(413),
)
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
