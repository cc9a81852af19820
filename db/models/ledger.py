"""The task ledger: one row per scrape task from enqueue to its end, and the platform table."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import (
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    Uuid,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from db.base import Base, created_at_column, updated_at_column


class TaskStatus(enum.StrEnum):
    QUEUED = "queued"
    LEASED = "leased"  # taken by an HTTP worker
    RUNNING = "running"  # taken by a Celery worker
    RETRY_WAIT = "retry_wait"
    SUCCEEDED = "succeeded"
    DEAD = "dead"
    CANCELLED = "cancelled"


ACTIVE_STATUSES = (
    TaskStatus.QUEUED,
    TaskStatus.LEASED,
    TaskStatus.RUNNING,
    TaskStatus.RETRY_WAIT,
)
FINAL_STATUSES = (TaskStatus.SUCCEEDED, TaskStatus.DEAD, TaskStatus.CANCELLED)

# The active statuses as SQL literals, for raw SQL and the partial unique index's predicate.
ACTIVE_STATUSES_SQL = ", ".join(f"'{status.value}'" for status in ACTIVE_STATUSES)
_ALL_SQL = ", ".join(f"'{status.value}'" for status in TaskStatus)


class Platform(Base):
    """A scraping platform (qpublic, beacon, demo, ...). Rows, not code: adding one is an insert."""

    __tablename__ = "platforms"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    description: Mapped[str] = mapped_column(Text, server_default="", nullable=False)
    is_enabled: Mapped[bool] = mapped_column(server_default=text("true"), nullable=False)
    max_retries: Mapped[int | None] = mapped_column(SmallInteger)
    retry_backoff_base_s: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = created_at_column()

    __table_args__ = (CheckConstraint("name ~ '^[a-z0-9_]+$'", name="name_slug"),)


class ScrapeTask(Base):
    __tablename__ = "scrape_tasks"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    platform: Mapped[str] = mapped_column(ForeignKey("platforms.name"), nullable=False)
    state: Mapped[str] = mapped_column(String(2), nullable=False)
    county: Mapped[str] = mapped_column(String(64), nullable=False)
    parcel_id: Mapped[str] = mapped_column(Text, nullable=False)
    parcel_key: Mapped[str] = mapped_column(Text, nullable=False)
    url: Mapped[str | None] = mapped_column(Text)
    priority: Mapped[int] = mapped_column(SmallInteger, server_default="3", nullable=False)
    status: Mapped[str] = mapped_column(
        String(16), server_default=TaskStatus.QUEUED.value, nullable=False
    )
    attempt: Mapped[int] = mapped_column(Integer, server_default="0", nullable=False)
    max_retries: Mapped[int] = mapped_column(SmallInteger, server_default="3", nullable=False)

    published_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    due_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    leased_by: Mapped[str | None] = mapped_column(String(128))
    lease_token: Mapped[int | None] = mapped_column(Integer)
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_error_reason: Mapped[str | None] = mapped_column(String(32))
    last_error_message: Mapped[str | None] = mapped_column(Text)
    error_history: Mapped[list[dict[str, object]]] = mapped_column(
        JSONB, server_default=text("'[]'::jsonb"), nullable=False
    )
    request_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = updated_at_column()

    __table_args__ = (
        CheckConstraint("priority BETWEEN 1 AND 4", name="priority_range"),
        CheckConstraint(f"status IN ({_ALL_SQL})", name="status_known"),
        # Enqueue is idempotent: one active task per (platform, state, county, parcel).
        Index(
            "uq_scrape_tasks_active_parcel",
            "platform",
            "state",
            "county",
            "parcel_key",
            unique=True,
            postgresql_where=text(f"status IN ({ACTIVE_STATUSES_SQL})"),
        ),
        Index("ix_scrape_tasks_status_due_at", "status", "due_at"),
        Index(
            "ix_scrape_tasks_leases",
            "lease_expires_at",
            postgresql_where=text("status IN ('leased', 'running')"),
        ),
        Index(
            "ix_scrape_tasks_unpublished",
            "created_at",
            postgresql_where=text("status = 'queued' AND published_at IS NULL"),
        ),
    )
