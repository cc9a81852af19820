"""task ledger and parcels

Revision ID: 0001
Revises:
Create Date: 2026-11-26

The task ledger (scrape_tasks), the platform table (seeded with the platforms named in
shared/data/county_sources.csv plus the synthetic `demo` platform) and the parcel tables.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

SEED_PLATFORMS = [
    ("demo", "Synthetic parcels derived from the parcel id; for demos and tests"),
    ("qpublic", "qPublic / Beacon (Schneider) assessor sites"),
    ("gis", "County GIS parcel viewers"),
]

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "parcels",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("state", sa.String(length=2), nullable=False),
        sa.Column("county", sa.String(length=64), nullable=False),
        sa.Column("parcel_key", sa.Text(), nullable=False),
        sa.Column("parcel_id", sa.Text(), nullable=False),
        sa.Column("platform", sa.String(length=64), nullable=False),
        sa.Column("scraped_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("data", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("data_hash", sa.String(length=64), nullable=False),
        sa.Column("raw_html_hash", sa.String(length=64), nullable=True),
        sa.Column("owner_name", sa.Text(), nullable=True),
        sa.Column("situs_address", sa.Text(), nullable=True),
        sa.Column("city", sa.Text(), nullable=True),
        sa.Column("zip", sa.String(length=10), nullable=True),
        sa.Column("property_type", sa.Text(), nullable=True),
        sa.Column("assessed_value", sa.Numeric(precision=14, scale=2), nullable=True),
        sa.Column("market_value", sa.Numeric(precision=14, scale=2), nullable=True),
        sa.Column("land_value", sa.Numeric(precision=14, scale=2), nullable=True),
        sa.Column("improvement_value", sa.Numeric(precision=14, scale=2), nullable=True),
        sa.Column("total_due", sa.Numeric(precision=14, scale=2), nullable=True),
        sa.Column("tax_year", sa.Integer(), nullable=True),
        sa.Column("is_delinquent", sa.Boolean(), nullable=True),
        sa.Column("delinquent_amount", sa.Numeric(precision=14, scale=2), nullable=True),
        sa.Column("last_sale_date", sa.Date(), nullable=True),
        sa.Column("last_sale_price", sa.Numeric(precision=14, scale=2), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_parcels")),
        sa.UniqueConstraint("state", "county", "parcel_key", name="uq_parcels_identity"),
    )
    op.create_index(
        "ix_parcels_state_county_total_due",
        "parcels",
        ["state", "county", "total_due"],
        unique=False,
    )
    op.create_table(
        "platforms",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("description", sa.Text(), server_default="", nullable=False),
        sa.Column("is_enabled", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("max_retries", sa.SmallInteger(), nullable=True),
        sa.Column("retry_backoff_base_s", sa.Integer(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("name ~ '^[a-z0-9_]+$'", name=op.f("ck_platforms_name_slug")),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_platforms")),
    )
    op.create_table(
        "parcel_snapshots",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("parcel_id", sa.BigInteger(), nullable=False),
        sa.Column("platform", sa.String(length=64), nullable=False),
        sa.Column("scraped_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("data", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("data_hash", sa.String(length=64), nullable=False),
        sa.Column("raw_html_hash", sa.String(length=64), nullable=True),
        sa.Column("task_id", sa.Uuid(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["parcel_id"],
            ["parcels.id"],
            name=op.f("fk_parcel_snapshots_parcel_id_parcels"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_parcel_snapshots")),
        sa.UniqueConstraint(
            "parcel_id", "platform", "scraped_at", name="uq_parcel_snapshots_scrape"
        ),
    )
    op.create_table(
        "scrape_tasks",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("platform", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=2), nullable=False),
        sa.Column("county", sa.String(length=64), nullable=False),
        sa.Column("parcel_id", sa.Text(), nullable=False),
        sa.Column("parcel_key", sa.Text(), nullable=False),
        sa.Column("url", sa.Text(), nullable=True),
        sa.Column("priority", sa.SmallInteger(), server_default="3", nullable=False),
        sa.Column("status", sa.String(length=16), server_default="queued", nullable=False),
        sa.Column("attempt", sa.Integer(), server_default="0", nullable=False),
        sa.Column("max_retries", sa.SmallInteger(), server_default="3", nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("leased_by", sa.String(length=128), nullable=True),
        sa.Column("lease_token", sa.Integer(), nullable=True),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error_reason", sa.String(length=32), nullable=True),
        sa.Column("last_error_message", sa.Text(), nullable=True),
        sa.Column(
            "error_history",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
        sa.Column("request_id", sa.String(length=64), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "status IN ('queued', 'leased', 'running', 'retry_wait', 'succeeded', 'dead', 'cancelled')",
            name=op.f("ck_scrape_tasks_status_known"),
        ),
        sa.CheckConstraint("priority BETWEEN 1 AND 4", name=op.f("ck_scrape_tasks_priority_range")),
        sa.ForeignKeyConstraint(
            ["platform"], ["platforms.name"], name=op.f("fk_scrape_tasks_platform_platforms")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scrape_tasks")),
    )
    op.create_index(
        "ix_scrape_tasks_leases",
        "scrape_tasks",
        ["lease_expires_at"],
        unique=False,
        postgresql_where=sa.text("status IN ('leased', 'running')"),
    )
    op.create_index(
        "ix_scrape_tasks_status_due_at", "scrape_tasks", ["status", "due_at"], unique=False
    )
    op.create_index(
        "ix_scrape_tasks_unpublished",
        "scrape_tasks",
        ["created_at"],
        unique=False,
        postgresql_where=sa.text("status = 'queued' AND published_at IS NULL"),
    )
    op.create_index(
        "uq_scrape_tasks_active_parcel",
        "scrape_tasks",
        ["platform", "state", "county", "parcel_key"],
        unique=True,
        postgresql_where=sa.text("status IN ('queued', 'leased', 'running', 'retry_wait')"),
    )
    platforms = sa.table(
        "platforms", sa.column("name", sa.String), sa.column("description", sa.Text)
    )
    op.bulk_insert(platforms, [{"name": n, "description": d} for n, d in SEED_PLATFORMS])


def downgrade() -> None:
    op.drop_index(
        "uq_scrape_tasks_active_parcel",
        table_name="scrape_tasks",
        postgresql_where=sa.text("status IN ('queued', 'leased', 'running', 'retry_wait')"),
    )
    op.drop_index(
        "ix_scrape_tasks_unpublished",
        table_name="scrape_tasks",
        postgresql_where=sa.text("status = 'queued' AND published_at IS NULL"),
    )
    op.drop_index("ix_scrape_tasks_status_due_at", table_name="scrape_tasks")
    op.drop_index(
        "ix_scrape_tasks_leases",
        table_name="scrape_tasks",
        postgresql_where=sa.text("status IN ('leased', 'running')"),
    )
    op.drop_table("scrape_tasks")
    op.drop_table("parcel_snapshots")
    op.drop_table("platforms")
    op.drop_index("ix_parcels_state_county_total_due", table_name="parcels")
    op.drop_table("parcels")
