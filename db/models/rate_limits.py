"""Fleet-wide start limits per platform, or per (platform, county): politeness as data."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from db.base import Base, updated_at_column


class RateLimit(Base):
    """At most ``per_minute`` task starts a minute in the scope, across every worker.

    ``county`` '' is the whole platform; a county limit applies on top of its platform's.
    """

    __tablename__ = "rate_limits"

    platform: Mapped[str] = mapped_column(
        ForeignKey("platforms.name", ondelete="CASCADE"), primary_key=True
    )
    county: Mapped[str] = mapped_column(String(64), primary_key=True, server_default="")
    per_minute: Mapped[int] = mapped_column(Integer, nullable=False)
    updated_at: Mapped[datetime] = updated_at_column()

    __table_args__ = (CheckConstraint("per_minute > 0", name="per_minute_positive"),)
