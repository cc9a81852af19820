"""Worker credentials (per-worker tokens bound to worker ids) and worker identity claims.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "worker_credentials",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("worker_ids", sa.String(length=129), nullable=False),
        sa.Column("owner", sa.Text(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_worker_credentials")),
        sa.UniqueConstraint("prefix", name=op.f("uq_worker_credentials_prefix")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_worker_credentials_token_hash")),
    )
    op.create_table(
        "worker_identity_claims",
        sa.Column("worker_id", sa.String(length=128), nullable=False),
        sa.Column("credential_key", sa.String(length=40), nullable=False),
        sa.Column(
            "claimed_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("worker_id", name=op.f("pk_worker_identity_claims")),
    )


def downgrade() -> None:
    op.drop_table("worker_identity_claims")
    op.drop_table("worker_credentials")
