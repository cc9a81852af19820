"""Raw scraped pages: one row per upload, linked to its task and parcel; content by sha256."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, Boolean, DateTime, Identity, Index, String, Text, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from db.base import Base, created_at_column


class RawFile(Base):
    """An upload. The bytes live once in storage under ``sha256``; uploads of the same page
    share them (``is_duplicate``). The parcel link is its identity, not a foreign key: a page
    is often uploaded before its parsed result creates the parcel."""

    __tablename__ = "raw_files"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    size_bytes: Mapped[int] = mapped_column(BigInteger, nullable=False)
    stored_bytes: Mapped[int] = mapped_column(BigInteger, nullable=False)
    is_compressed: Mapped[bool] = mapped_column(Boolean, nullable=False)
    is_duplicate: Mapped[bool] = mapped_column(Boolean, nullable=False)
    content_type: Mapped[str] = mapped_column(String(128), nullable=False)
    task_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    platform: Mapped[str | None] = mapped_column(String(64))
    state: Mapped[str | None] = mapped_column(String(2))
    county: Mapped[str | None] = mapped_column(String(64))
    parcel_key: Mapped[str | None] = mapped_column(Text)
    parcel_id: Mapped[str | None] = mapped_column(Text)  # as scraped
    scraped_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    worker_id: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = created_at_column()

    __table_args__ = (
        Index("ix_raw_files_sha256", "sha256"),
        Index("ix_raw_files_task_id", "task_id"),
        Index("ix_raw_files_parcel", "state", "county", "parcel_key"),
    )
