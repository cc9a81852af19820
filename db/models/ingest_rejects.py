"""Result items the ingest could not write, kept with their reason until an operator acts."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import BigInteger, Identity, Index, String, Text, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from db.base import Base, created_at_column


class RejectReason(enum.StrEnum):
    INVALID = "invalid"  # failed validation (a scraper that sent straight to the queue)
    POISON = "poison"  # valid, but its write failed on its own (isolated from its chunk)
    RETRY_EXHAUSTED = "retry_exhausted"  # transient failures outlasted the retry limit


class IngestReject(Base):
    """One accepted result item that did not become a parcel row.

    ``payload`` is the item as it arrived, as ASCII JSON text: it keeps what ``jsonb`` could
    not hold (NUL, lone surrogates), so a re-ingest sends exactly what the worker sent.
    """

    __tablename__ = "ingest_rejects"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    reason_code: Mapped[str] = mapped_column(String(32), nullable=False)
    reason: Mapped[str] = mapped_column(Text, nullable=False)
    payload: Mapped[str] = mapped_column(Text, nullable=False)
    task_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    platform: Mapped[str | None] = mapped_column(String(64))
    parcel_id: Mapped[str | None] = mapped_column(Text)  # as sent, when it is storable text
    request_id: Mapped[str | None] = mapped_column(String(128))
    message_id: Mapped[str | None] = mapped_column(String(64))  # the ingest message it came in
    created_at: Mapped[datetime] = created_at_column()

    __table_args__ = (
        Index("ix_ingest_rejects_created_at", "created_at"),
        Index("ix_ingest_rejects_task_id", "task_id"),
    )
