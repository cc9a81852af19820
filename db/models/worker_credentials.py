"""Worker credentials: per-worker tokens bound to the worker ids they may use, and the claim
that ties each worker id to the one credential that uses it."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, Identity, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from db.base import Base, created_at_column


class WorkerCredential(Base):
    """A worker token managed like an API key: shown once, stored as sha256, revocable."""

    __tablename__ = "worker_credentials"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    # Non-secret, unique: names the token in listings and logs.
    prefix: Mapped[str] = mapped_column(String(16), nullable=False, unique=True)
    token_hash: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    # The worker ids this token may use: an exact id, or a prefix ending in "*" ("fleet-a-*").
    worker_ids: Mapped[str] = mapped_column(String(129), nullable=False)
    owner: Mapped[str] = mapped_column(Text, nullable=False)
    created_at: Mapped[datetime] = created_at_column()
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None


class WorkerIdentityClaim(Base):
    """Which credential a worker id belongs to: the first one that used it, for as long as
    that credential is active. Leases, heartbeats and commands are per worker id, so an id
    must never be usable under two credentials."""

    __tablename__ = "worker_identity_claims"

    worker_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    # "config:<sha256 prefix>" for a GATEWAY_WORKER_TOKENS token, "db:<id>" for a credential.
    credential_key: Mapped[str] = mapped_column(String(40), nullable=False)
    claimed_at: Mapped[datetime] = created_at_column()
