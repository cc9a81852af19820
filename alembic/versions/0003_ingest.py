"""Results ingestion: raw files and what the ingestion issue adds

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26

Two typed parcel columns parsed on ingest (living area, acreage), a unique index on the parcel
identity as one text (the ingest's lookup path, immune to stale statistics) and the
``raw_files`` table, one row per uploaded page, linked to its task and to its parcel.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("parcels", sa.Column("living_area_sqft", sa.Integer(), nullable=True))
    op.add_column("parcels", sa.Column("acreage", sa.Numeric(precision=12, scale=4), nullable=True))
    # Ingest looks staged rows up by this expression (see services/ingest/batch.py).
    op.execute(
        "CREATE UNIQUE INDEX uq_parcels_identity_text ON parcels "
        "(((state)::text || '/' || (county)::text || '/' || parcel_key))"
    )
    op.create_table(
        "raw_files",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("stored_bytes", sa.BigInteger(), nullable=False),
        sa.Column("is_compressed", sa.Boolean(), nullable=False),
        sa.Column("is_duplicate", sa.Boolean(), nullable=False),
        sa.Column("content_type", sa.String(length=128), nullable=False),
        sa.Column("task_id", sa.Uuid(), nullable=True),
        sa.Column("platform", sa.String(length=64), nullable=True),
        sa.Column("state", sa.String(length=2), nullable=True),
        sa.Column("county", sa.String(length=64), nullable=True),
        sa.Column("parcel_key", sa.Text(), nullable=True),
        sa.Column("parcel_id", sa.Text(), nullable=True),
        sa.Column("scraped_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("worker_id", sa.String(length=128), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_raw_files")),
    )
    op.create_index("ix_raw_files_sha256", "raw_files", ["sha256"])
    op.create_index("ix_raw_files_task_id", "raw_files", ["task_id"])
    op.create_index("ix_raw_files_parcel", "raw_files", ["state", "county", "parcel_key"])


def downgrade() -> None:
    op.drop_index("ix_raw_files_parcel", table_name="raw_files")
    op.drop_index("ix_raw_files_task_id", table_name="raw_files")
    op.drop_index("ix_raw_files_sha256", table_name="raw_files")
    op.drop_table("raw_files")
    op.drop_index("uq_parcels_identity_text", table_name="parcels")
    op.drop_column("parcels", "acreage")
    op.drop_column("parcels", "living_area_sqft")
