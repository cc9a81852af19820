"""The worker contract's shapes as the gateway sends and takes them (extra fields ignored, so
a newer gateway that adds fields does not break an older client)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class WireModel(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class WorkTarget(WireModel):
    parcel_id: str
    state: str
    county: str
    url: str | None = None


class WorkTask(WireModel):
    task_id: uuid.UUID
    type: str
    platform: str
    target: WorkTarget
    priority: int
    created_at: datetime
    attempt: int
    lease_expires_at: datetime
    lease_token: int


class WorkBatch(WireModel):
    tasks: list[WorkTask]
    retry_after: int = 0


class CompleteOutcome(WireModel):
    task_id: uuid.UUID
    status: str
    already_completed: bool


class FailOutcome(WireModel):
    should_retry: bool
    retry_after: int | None
    moved_to_dlq: bool


class ExtendOutcome(WireModel):
    task_id: uuid.UUID
    lease_expires_at: datetime


class BatchItemError(WireModel):
    task_id: uuid.UUID
    code: str
    message: str


class BatchCompleteOutcome(WireModel):
    success: bool
    completed: list[uuid.UUID]
    already_completed: list[uuid.UUID]
    errors: list[BatchItemError]


class ResultItem(WireModel):
    """One item of ``POST /internal/results``."""

    task_id: uuid.UUID | None = None
    parcel_id: str
    platform: str
    state: str
    county: str
    data: dict[str, Any]
    scraped_at: datetime
    parse_duration_ms: int | None = None
    raw_html_hash: str | None = None


class ResultsOutcome(WireModel):
    """Either answer of ``POST /internal/results``: 202 (queued) or 200 (written).

    ``errors`` holds ``{index, reason}`` objects on a 202 and ``"<parcel_id>: <reason>"``
    strings on a 200, as the gateway sends them.
    """

    is_ingested: bool  # 200: every accepted item is written or rejected
    accepted: int
    failed: int
    errors: list[Any] = Field(default_factory=list)
    inserted: int | None = None
    updated: int | None = None
    pending: int | None = None


class RawFileStored(WireModel):
    path: str
    sha256: str
    size_bytes: int
    is_duplicate: bool
    content_type: str


class HeartbeatStatus(WireModel):
    active_tasks: int = 0
    completed_last_minute: int = 0
    failed_last_minute: int = 0
    platforms: list[str] = Field(default_factory=list)
    cpu_percent: float | None = None
    memory_percent: float | None = None
    # The leases held: only these are kept alive (one whose lease answer was lost runs out).
    task_ids: list[uuid.UUID] | None = None


class HeartbeatAnswer(WireModel):
    acknowledged: bool
    commands: list[str]
