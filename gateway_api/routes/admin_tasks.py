"""``/admin/tasks``: enqueue scrape tasks in batches, inspect a task, the ledger's balance."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from db.models import ScrapeTask
from gateway_api.api_docs import ADMIN_ERRORS, error_responses
from gateway_api.auth import AdminDep
from gateway_api.deps import SessionDep
from gateway_api.schemas import PlatformName, Text
from observability.request_context import get_request_id
from services.dispatch.broker_client import enqueue_and_publish
from services.dispatch.cancellation import cancel_task
from services.dispatch.enqueue import MAX_BATCH, EnqueueRequest, ItemStatus
from services.dispatch.ledger_stats import ledger_balance
from services.errors import NotFound
from services.ingest.items import MAX_PARCEL_ID_CHARS

router = APIRouter(prefix="/admin/tasks", tags=["admin"], responses=ADMIN_ERRORS)


class EnqueueItemIn(BaseModel):
    platform: PlatformName = Field(min_length=1)
    state: Text = Field(min_length=1, max_length=32)
    county: Text = Field(min_length=1, max_length=128)
    # One limit with results: a task whose result could never be accepted is not enqueued.
    parcel_id: Text = Field(max_length=MAX_PARCEL_ID_CHARS)
    url: Text | None = Field(default=None, max_length=2000)
    priority: int | None = Field(default=None, ge=-(2**31), le=2**31 - 1)


class EnqueueIn(BaseModel):
    # Items are checked one by one, so one bad item never rejects the batch.
    tasks: list[dict[str, Any]] = Field(max_length=MAX_BATCH)


class EnqueueItemOut(BaseModel):
    index: int
    status: str
    task_id: uuid.UUID | None
    error: str | None


class EnqueueOut(BaseModel):
    enqueued: int
    already_active: int
    invalid: int
    items: list[EnqueueItemOut]


class TaskOut(BaseModel):
    task_id: uuid.UUID
    platform: str
    state: str
    county: str
    parcel_id: str
    url: str | None
    priority: int
    status: str
    attempt: int
    max_retries: int
    leased_by: str | None
    lease_expires_at: datetime | None
    due_at: datetime | None
    last_error_reason: str | None
    last_error_message: str | None
    error_history: list[dict[str, Any]]
    created_at: datetime
    finished_at: datetime | None


class LedgerBalanceOut(BaseModel):
    enqueued: int
    succeeded: int
    dead: int
    cancelled: int
    active: int


_item_adapter = TypeAdapter(EnqueueItemIn)


def _describe(exc: ValidationError) -> str:
    first = exc.errors()[0]
    return f"{'.'.join(str(p) for p in first['loc']) or 'item'}: {first['msg']}"


def task_out(task: ScrapeTask) -> TaskOut:
    return TaskOut(
        task_id=task.id,
        **{name: getattr(task, name) for name in TaskOut.model_fields if name != "task_id"},
    )


@router.post(
    "",
    summary="Enqueue scrape tasks",
    responses=error_responses(413, 422),
)
def enqueue_tasks(body: EnqueueIn, _: AdminDep) -> EnqueueOut:
    """Enqueue up to 10,000 tasks; each item is reported (enqueued, already active, invalid)."""
    requests: list[EnqueueRequest] = []
    positions: list[int] = []
    items: list[EnqueueItemOut] = []
    for index, raw in enumerate(body.tasks):
        try:
            item = _item_adapter.validate_python(raw)
        except ValidationError as exc:
            items.append(
                EnqueueItemOut(index=index, status="invalid", task_id=None, error=_describe(exc))
            )
            continue
        requests.append(EnqueueRequest(**item.model_dump()))
        positions.append(index)
    report = enqueue_and_publish(requests, request_id=get_request_id())
    for outcome in report.outcomes:
        items.append(
            EnqueueItemOut(
                index=positions[outcome.index],
                status=outcome.status.value,
                task_id=outcome.task_id,
                error=outcome.error,
            )
        )
    items.sort(key=lambda item: item.index)
    return EnqueueOut(
        enqueued=report.count(ItemStatus.ENQUEUED),
        already_active=report.count(ItemStatus.ALREADY_ACTIVE),
        invalid=sum(1 for item in items if item.status == ItemStatus.INVALID.value),
        items=items,
    )


@router.get(
    "/balance",
    summary="Get the ledger balance",
)
def get_ledger_balance(_: AdminDep, session: SessionDep) -> LedgerBalanceOut:
    """The ledger invariant's terms: enqueued = succeeded + dead + cancelled + active."""
    return LedgerBalanceOut(**ledger_balance(session))


@router.post(
    "/{task_id}/cancel",
    summary="Cancel a task",
    responses=error_responses(404, 409, 413, 422),
)
def cancel_scrape_task(task_id: uuid.UUID, _: AdminDep, session: SessionDep) -> TaskOut:
    """Cancel an active task; workers holding it get 409 from then on."""
    return task_out(cancel_task(session, task_id, now=datetime.now(UTC)))


@router.get(
    "/{task_id}",
    summary="Get a task",
    responses=error_responses(404, 422),
)
def get_task(task_id: uuid.UUID, _: AdminDep, session: SessionDep) -> TaskOut:
    """One task of the ledger, with its attempts and errors."""
    task = session.get(ScrapeTask, task_id)
    if task is None:
        raise NotFound(f"task {task_id} does not exist")
    return task_out(task)
