"""Accepted result chunks kept in PostgreSQL until the ingest has written them.

The broker alone is not a durable record: kombu's Redis transport takes a message off the
queue and records it as unacked in a second step, and a Redis killed in between loses it. So
``POST /internal/results`` commits one row per ingest message before publishing it, the
ingest deletes the row in the transaction that writes the message's items, and a periodic
job re-publishes rows that outlive a grace period (``services.ingest.outbox``).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from db.base import Base, created_at_column


class ResultOutbox(Base):
    """One accepted ingest message, until its items are written or recorded as rejects.

    ``payload`` is the message's list of items as ASCII JSON text, exactly what was published,
    so a re-publish sends the same items under the same ``message_id`` (the Celery task id).
    """

    __tablename__ = "result_outbox"

    message_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    payload: Mapped[str] = mapped_column(Text, nullable=False)
    request_id: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = created_at_column()
    republished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    republish_count: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")

    __table_args__ = (Index("ix_result_outbox_created_at", "created_at"),)
