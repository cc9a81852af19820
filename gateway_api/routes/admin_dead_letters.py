"""``/admin/dead-letters``: list, inspect, re-drive (rate-capped) and purge."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from gateway_api.api_docs import ADMIN_ERRORS, error_responses
from gateway_api.auth import AdminDep
from gateway_api.deps import SessionDep
from gateway_api.routes.admin_tasks import TaskOut, task_out
from gateway_api.schemas import AgeSeconds, Int32, PlatformName
from services.dispatch.dead_letters import (
    MAX_PAGE,
    DeadLetterFilter,
    get_dead_letter,
    list_dead_letters,
    purge_dead_letters,
    redrive_dead_letters,
)
from services.dispatch.failures import FailureReason
from settings import get_settings

router = APIRouter(prefix="/admin/dead-letters", tags=["admin"], responses=ADMIN_ERRORS)
# The reasons are a closed set (workers' other words are recorded as `other`).
Reason = FailureReason
MAX_REDRIVE = 10_000


class DeadLetterList(BaseModel):
    items: list[TaskOut]


class FilterIn(BaseModel):
    task_ids: list[uuid.UUID] = Field(default_factory=list, max_length=MAX_REDRIVE)
    platform: PlatformName | None = None
    reason: Reason | None = None
    older_than_s: AgeSeconds | None = None
    newer_than_s: AgeSeconds | None = None

    def to_filter(self) -> DeadLetterFilter:
        return DeadLetterFilter(
            task_ids=self.task_ids,
            platform=self.platform,
            reason=self.reason,
            older_than_s=self.older_than_s,
            newer_than_s=self.newer_than_s,
        )


class RedriveIn(FilterIn):
    limit: int = Field(default=1000, ge=1, le=MAX_REDRIVE)
    rate_per_s: float | None = Field(default=None, gt=0, le=10_000, allow_inf_nan=False)


class RedriveOut(BaseModel):
    redriven: int
    skipped_active: int
    task_ids: list[uuid.UUID]
    first_due_at: datetime | None
    last_due_at: datetime | None


class PurgeIn(FilterIn):
    purge_all: bool = False


class PurgeOut(BaseModel):
    purged: int


@router.get(
    "",
    summary="List dead letters",
    responses=error_responses(422),
)
def list_dead(
    _: AdminDep,
    session: SessionDep,
    platform: Annotated[PlatformName | None, Query()] = None,
    reason: Annotated[Reason | None, Query()] = None,
    older_than_s: Annotated[AgeSeconds | None, Query()] = None,
    newer_than_s: Annotated[AgeSeconds | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
    offset: Annotated[Int32, Query()] = 0,
) -> DeadLetterList:
    """Dead letters, newest first, filtered by platform, reason and age."""
    filters = DeadLetterFilter(
        platform=platform, reason=reason, older_than_s=older_than_s, newer_than_s=newer_than_s
    )
    tasks = list_dead_letters(session, filters, now=datetime.now(UTC), limit=limit, offset=offset)
    return DeadLetterList(items=[task_out(task) for task in tasks])


@router.get(
    "/{task_id}",
    summary="Get a dead letter",
    responses=error_responses(404, 422),
)
def get_dead(task_id: uuid.UUID, _: AdminDep, session: SessionDep) -> TaskOut:
    """One dead letter with its error history."""
    return task_out(get_dead_letter(session, task_id))


@router.post(
    "/redrive",
    summary="Re-drive dead letters",
    responses=error_responses(413, 422),
)
def redrive_dead(body: RedriveIn, _: AdminDep, session: SessionDep) -> RedriveOut:
    """Give dead letters fresh attempts; they re-enter their queues at ``rate_per_s``."""
    report = redrive_dead_letters(
        session,
        body.to_filter(),
        now=datetime.now(UTC),
        limit=body.limit,
        rate_per_s=body.rate_per_s or get_settings().redrive_rate_per_s,
    )
    return RedriveOut(
        redriven=len(report.redriven),
        skipped_active=len(report.skipped_active),
        task_ids=report.redriven,
        first_due_at=report.first_due_at,
        last_due_at=report.last_due_at,
    )


@router.post(
    "/purge",
    summary="Purge dead letters",
    responses=error_responses(413, 422),
)
def purge_dead(body: PurgeIn, _: AdminDep, session: SessionDep) -> PurgeOut:
    """Drop dead letters for good (they stay in the ledger as cancelled)."""
    purged = purge_dead_letters(
        session, body.to_filter(), now=datetime.now(UTC), purge_all=body.purge_all
    )
    return PurgeOut(purged=purged)
