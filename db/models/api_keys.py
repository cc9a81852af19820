"""API keys of the public ``/v1`` API. Only a hash of each key is stored; the key is shown once."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, Identity, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from db.base import Base, created_at_column


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    # Short, non-secret, unique: shown in listings and logs so a key can be named without
    # revealing it. Lookup on the hot path is by ``key_hash``.
    prefix: Mapped[str] = mapped_column(String(16), nullable=False, unique=True)
    # sha256 hex of the whole key. The key carries 256 bits of randomness, so a fast hash is
    # enough: nothing can be brute-forced, and a slow password hash would cost every request.
    key_hash: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    tier: Mapped[str] = mapped_column(String(32), nullable=False)
    owner: Mapped[str] = mapped_column(Text, nullable=False)
    created_at: Mapped[datetime] = created_at_column()
    rotated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None
