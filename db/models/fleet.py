"""The fleet registry: HTTP workers known by their heartbeats, and operators' queued commands."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Identity,
    Index,
    Integer,
    Sequence,
    String,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from db.base import Base, created_at_column
from db.models.ledger import ScrapeTask

# Fencing tokens for leases: strictly increasing across the whole ledger, so a token handed
# out earlier can never match a later lease of the same task.
LEASE_TOKEN_SEQUENCE = Sequence(
    "scrape_task_lease_token_seq", data_type=Integer, cycle=True, metadata=Base.metadata
)


class WorkerCommandKind(enum.StrEnum):
    PAUSE = "pause"
    RESUME = "resume"
    SHUTDOWN = "shutdown"


_COMMANDS_SQL = ", ".join(f"'{kind.value}'" for kind in WorkerCommandKind)


class Worker(Base):
    """One row per worker id that has sent a heartbeat; alive/stale is derived from its age."""

    __tablename__ = "workers"

    worker_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    platforms: Mapped[list[str]] = mapped_column(
        JSONB, server_default=text("'[]'::jsonb"), nullable=False
    )
    active_tasks: Mapped[int] = mapped_column(Integer, server_default="0", nullable=False)
    completed_last_minute: Mapped[int] = mapped_column(Integer, server_default="0", nullable=False)
    failed_last_minute: Mapped[int] = mapped_column(Integer, server_default="0", nullable=False)
    cpu_percent: Mapped[float | None] = mapped_column(Float)
    memory_percent: Mapped[float | None] = mapped_column(Float)
    is_paused: Mapped[bool] = mapped_column(server_default=text("false"), nullable=False)
    first_seen_at: Mapped[datetime] = created_at_column()
    last_heartbeat_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    # Set when the reaper took this worker's leases for silence; cleared by its next heartbeat.
    stale_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (Index("ix_workers_last_heartbeat_at", "last_heartbeat_at"),)


class WorkerCommand(Base):
    """A command an operator queued for a worker; the worker's next heartbeat delivers it."""

    __tablename__ = "worker_commands"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    worker_id: Mapped[str] = mapped_column(
        ForeignKey("workers.worker_id", ondelete="CASCADE"), nullable=False
    )
    command: Mapped[str] = mapped_column(String(16), nullable=False)
    created_at: Mapped[datetime] = created_at_column()
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        CheckConstraint(f"command IN ({_COMMANDS_SQL})", name="command_known"),
        Index(
            "ix_worker_commands_pending",
            "worker_id",
            "id",
            postgresql_where=text("delivered_at IS NULL"),
        ),
    )


# Ledger indexes the dispatch issue adds (migration 0002); declared here beside their users.
Index(
    "ix_scrape_tasks_dead",
    ScrapeTask.platform,
    ScrapeTask.last_error_reason,
    ScrapeTask.finished_at,
    postgresql_where=text("status = 'dead'"),
)
Index("ix_scrape_tasks_leased_by", ScrapeTask.leased_by, postgresql_where=text("status = 'leased'"))
