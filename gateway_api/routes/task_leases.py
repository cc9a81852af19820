"""Lease holders finish their work: complete, fail, extend, and a batch form of complete."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from db.session import session_scope
from gateway_api import worker_examples
from gateway_api.api_docs import WORKER_ERRORS, error_responses
from gateway_api.auth import WorkerDep
from gateway_api.complete_groups import CompleteGroups
from gateway_api.deps import SessionDep
from gateway_api.optional_bodies import documented_body, read_json_object, validate_optional_body
from gateway_api.schemas import INT32_MAX, Text
from services.dispatch.failures import WORKER_REASONS, classify_worker_reason
from services.dispatch.grouped_completion import BatchItemError, CompleteCall, complete_leases
from services.dispatch.leases import CompletionOutcome, extend_lease, fail_lease
from settings import get_settings

router = APIRouter(prefix="/internal/tasks", tags=["workers"], responses=WORKER_ERRORS)
MAX_BATCH = 1000


class LeaseRef(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [worker_examples.LEASE_REF]})

    lease_token: int | None = Field(
        default=None, ge=0, le=INT32_MAX, description="fencing token from /internal/work"
    )


OptionalBody = Annotated[dict[str, Any] | None, Depends(read_json_object)]


class CompleteOut(BaseModel):
    success: bool = Field(default=True, description="The original's answer: the task is done")
    task_id: uuid.UUID
    status: str
    already_completed: bool


class FailIn(LeaseRef):
    model_config = ConfigDict(json_schema_extra={"examples": [worker_examples.FAIL]})

    reason: Text | None = Field(
        default=None,
        max_length=10_000,
        description=f"One of {', '.join(sorted(WORKER_REASONS))}; no reason is recorded as"
        " unknown, any other text as other (the text kept in the message)",
    )
    message: Text | None = Field(default="", max_length=10_000)
    retry_suggested: bool | None = True
    retry_after_s: float | None = Field(
        default=None,
        ge=0,
        le=86_400,
        description="The site's Retry-After, in seconds, if it sent one: the platform's (or"
        " county's) starts pause that long and its rate is lowered for a cool-down",
    )


class FailOut(BaseModel):
    should_retry: bool
    retry_after: int | None
    moved_to_dlq: bool
    status: Literal["reported"] = Field(default="reported", description="As the original")
    success: bool = Field(default=True, description="As the original: the failure is recorded")


class ExtendIn(LeaseRef):
    model_config = ConfigDict(json_schema_extra={"examples": [worker_examples.EXTEND]})

    extend_s: int | None = Field(default=None, ge=1, le=3600)


class ExtendOut(BaseModel):
    task_id: uuid.UUID
    lease_expires_at: datetime


class BatchItem(LeaseRef):
    task_id: uuid.UUID


class BatchCompleteIn(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [worker_examples.BATCH_COMPLETE]})

    tasks: list[BatchItem] = Field(max_length=MAX_BATCH)


class BatchError(BaseModel):
    task_id: uuid.UUID
    code: str
    message: str


class BatchCompleteOut(BaseModel):
    success: bool = Field(description="Every task of the batch is done (errors is empty)")
    completed: list[uuid.UUID]
    already_completed: list[uuid.UUID]
    errors: list[BatchError]


def _complete_in_transaction(
    items: list[tuple[uuid.UUID, int | None]], worker_id: str
) -> tuple[list[CompletionOutcome], list[BatchItemError]]:
    with session_scope() as session:
        return complete_leases(session, items, worker_id=worker_id, now=datetime.now(UTC))


async def get_completes(request: Request) -> CompleteGroups:
    """The process's group commit of single completes (made by the app's lifespan)."""
    completes: CompleteGroups = request.app.state.completes
    return completes


CompletesDep = Annotated[CompleteGroups, Depends(get_completes)]


# The complete routes are the hottest of a busy fleet: async, with their transaction in one
# trip to the threadpool (a sync route with a session dependency makes three), and a single
# complete shares that trip and transaction with the others waiting (gateway_api.group_commit).
@router.post(
    "/complete",
    summary="Complete many tasks",
    responses=error_responses(413),
)
async def complete_tasks(body: BatchCompleteIn, worker: WorkerDep) -> BatchCompleteOut:
    """Complete many leases at once; each item succeeds or fails on its own."""
    items = [(item.task_id, item.lease_token) for item in body.tasks]
    done, errors = await run_in_threadpool(_complete_in_transaction, items, worker.worker_id)
    return BatchCompleteOut(
        success=not errors,
        completed=[d.task_id for d in done if not d.was_already_completed],
        already_completed=[d.task_id for d in done if d.was_already_completed],
        errors=[BatchError(task_id=e.task_id, code=e.code, message=e.message) for e in errors],
    )


@router.post(
    "/{task_id}/complete",
    openapi_extra=documented_body(LeaseRef),
    summary="Complete a task",
    responses=error_responses(404, 409, 413),
)
async def complete_task(
    task_id: uuid.UUID, worker: WorkerDep, raw_body: OptionalBody, completes: CompletesDep
) -> CompleteOut:
    """Mark a leased task done; only its lease holder may, and repeating it is harmless.

    The body is optional: without ``lease_token`` only the lease holder's identity is checked.
    """
    body = validate_optional_body(LeaseRef, raw_body)
    call = CompleteCall(task_id, worker.worker_id, body.lease_token if body else None)
    outcome = await completes.submit(call)
    return CompleteOut(
        task_id=task_id, status="succeeded", already_completed=outcome.was_already_completed
    )


@router.post(
    "/{task_id}/fail",
    openapi_extra=documented_body(FailIn),
    summary="Report a failed attempt",
    responses=error_responses(404, 409, 413),
)
def fail_task(
    task_id: uuid.UUID, worker: WorkerDep, session: SessionDep, raw_body: OptionalBody
) -> FailOut:
    """Report a failed attempt: retried with backoff, or moved to the dead letters.

    The body is optional, as the original ignored it: none is a retryable failure with
    reason ``unknown``.
    """
    body = validate_optional_body(FailIn, raw_body) or FailIn()
    reason, message = classify_worker_reason(body.reason, body.message or "")
    outcome = fail_lease(
        session,
        task_id,
        worker_id=worker.worker_id,
        lease_token=body.lease_token,
        reason=reason,
        message=message,
        retry_suggested=body.retry_suggested is not False,
        retry_after_s=body.retry_after_s,
        now=datetime.now(UTC),
    )
    return FailOut(
        should_retry=outcome.should_retry,
        retry_after=outcome.retry_after_s,
        moved_to_dlq=outcome.moved_to_dlq,
    )


@router.post(
    "/{task_id}/extend",
    summary="Extend a lease",
    responses=error_responses(404, 409, 413),
)
def extend_task(
    task_id: uuid.UUID,
    worker: WorkerDep,
    session: SessionDep,
    body: Annotated[ExtendIn | None, Body()] = None,
) -> ExtendOut:
    """Push the lease's expiry out (default: one lease timeout from now)."""
    expires = extend_lease(
        session,
        task_id,
        worker_id=worker.worker_id,
        lease_token=body.lease_token if body else None,
        extend_s=(body.extend_s if body else None) or get_settings().lease_timeout_s,
        now=datetime.now(UTC),
    )
    return ExtendOut(task_id=task_id, lease_expires_at=expires)
