"""``/admin/ingest-rejects``: accepted result items that did not become parcels."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, Field

from db.models import IngestReject, RejectReason
from gateway_api.api_docs import ADMIN_ERRORS, error_responses
from gateway_api.auth import AdminDep
from gateway_api.deps import SessionDep
from services.ingest.outbox import record_and_publish
from services.ingest.rejects import (
    count_rejects,
    delete_rejects,
    get_reject,
    list_rejects,
    reingest_rejects,
)
from settings import get_settings

router = APIRouter(prefix="/admin/ingest-rejects", tags=["admin"], responses=ADMIN_ERRORS)
MAX_PAGE = 500
MAX_BATCH = 10_000
MAX_AGE_S = 100 * 365 * 86_400


class RejectOut(BaseModel):
    id: int
    reason_code: RejectReason
    reason: str
    task_id: uuid.UUID | None
    platform: str | None
    parcel_id: str | None
    request_id: str | None
    message_id: str | None
    created_at: datetime
    payload: str | None = None  # the item as sent (ASCII JSON); only when one is shown


class RejectList(BaseModel):
    items: list[RejectOut]
    counts: dict[str, int]  # rejects held, by reason


class SelectionIn(BaseModel):
    ids: list[int] | None = Field(default=None, max_length=MAX_BATCH)
    reason: RejectReason | None = None


class ReingestIn(SelectionIn):
    limit: int = Field(default=1000, ge=1, le=MAX_BATCH)


class ReingestOut(BaseModel):
    reingested: int


class PurgeIn(SelectionIn):
    older_than_s: float | None = Field(default=None, ge=0, le=MAX_AGE_S)


class PurgeOut(BaseModel):
    purged: int


def reject_out(reject: IngestReject, *, with_payload: bool = False) -> RejectOut:
    return RejectOut(
        id=reject.id,
        reason_code=RejectReason(reject.reason_code),
        reason=reject.reason,
        task_id=reject.task_id,
        platform=reject.platform,
        parcel_id=reject.parcel_id,
        request_id=reject.request_id,
        message_id=reject.message_id,
        created_at=reject.created_at,
        payload=reject.payload if with_payload else None,
    )


@router.get(
    "",
    summary="List ingest rejects",
    responses=error_responses(422),
)
def list_ingest_rejects(
    _: AdminDep,
    session: SessionDep,
    reason: RejectReason | None = None,
    before_id: Annotated[int | None, Query(ge=1, le=2**62)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
) -> RejectList:
    """Rejects, newest first (page with ``before_id``), and how many are held by reason."""
    rejects = list_rejects(session, reason_code=reason, before_id=before_id, limit=limit)
    return RejectList(items=[reject_out(r) for r in rejects], counts=count_rejects(session))


@router.get(
    "/{reject_id}",
    summary="Get an ingest reject",
    responses=error_responses(404, 422),
)
def get_ingest_reject(
    reject_id: Annotated[int, Path(ge=1, le=2**62)], _: AdminDep, session: SessionDep
) -> RejectOut:
    """One reject with the item as it was sent."""
    return reject_out(get_reject(session, reject_id), with_payload=True)


@router.post(
    "/reingest",
    summary="Re-ingest rejects",
    responses=error_responses(413, 422),
)
def reingest_ingest_rejects(body: ReingestIn, _: AdminDep, session: SessionDep) -> ReingestOut:
    """Send matching rejects back to the ingest queue (after the fault that held them is fixed)."""
    chunk_size = get_settings().ingest_chunk_size
    count = reingest_rejects(
        session,
        publish=lambda payloads: record_and_publish(session, payloads, chunk_size=chunk_size),
        ids=body.ids,
        reason_code=body.reason,
        limit=body.limit,
    )
    return ReingestOut(reingested=count)


@router.post(
    "/purge",
    summary="Purge ingest rejects",
    responses=error_responses(413, 422),
)
def purge_ingest_rejects(body: PurgeIn, _: AdminDep, session: SessionDep) -> PurgeOut:
    """Delete matching rejects for good (at least one of ids, reason, age)."""
    created_before = (
        datetime.now(UTC) - timedelta(seconds=body.older_than_s)
        if body.older_than_s is not None
        else None
    )
    purged = delete_rejects(
        session, ids=body.ids, reason_code=body.reason, created_before=created_before
    )
    return PurgeOut(purged=purged)
