"""``/admin/queues``: queued tasks per platform and priority, with the oldest one's age."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel

from gateway_api.api_docs import ADMIN_ERRORS, error_responses
from gateway_api.auth import AdminDep
from gateway_api.deps import SessionDep
from gateway_api.schemas import PlatformName
from services.dispatch.ledger_stats import QueueDepth, read_queue_depths
from services.queues import scrape_queue_name

router = APIRouter(prefix="/admin/queues", tags=["admin"], responses=ADMIN_ERRORS)


class QueueDepthOut(BaseModel):
    platform: str
    priority: int
    queue: str
    queued: int
    oldest_queued_at: datetime
    oldest_age_s: float


class QueueDepthList(BaseModel):
    queues: list[QueueDepthOut]


def build_queue_depth_list(depths: list[QueueDepth], *, now: datetime) -> QueueDepthList:
    return QueueDepthList(
        queues=[
            QueueDepthOut(
                platform=depth.platform,
                priority=depth.priority,
                queue=scrape_queue_name(depth.platform, depth.priority),
                queued=depth.queued,
                oldest_queued_at=depth.oldest_queued_at,
                oldest_age_s=max((now - depth.oldest_queued_at).total_seconds(), 0.0),
            )
            for depth in depths
        ]
    )


@router.get("", summary="Queue depths", responses=error_responses(422))
def list_queue_depths(
    _: AdminDep,
    session: SessionDep,
    platform: Annotated[PlatformName | None, Query()] = None,
) -> QueueDepthList:
    """Queued tasks per platform and priority (from the ledger), with the oldest's age."""
    depths = read_queue_depths(session, platform=platform)
    return build_queue_depth_list(depths, now=datetime.now(UTC))
