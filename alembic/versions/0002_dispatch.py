"""Task dispatch: fleet registry, worker commands and the lease fencing-token sequence

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26

Written by hand (db/models/fleet.py is the model). The sequence hands out lease tokens;
``workers`` is the registry fed by heartbeats; ``worker_commands`` holds operators' commands
until a heartbeat delivers them.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("CREATE SEQUENCE scrape_task_lease_token_seq AS integer CYCLE")
    op.create_table(
        "workers",
        sa.Column("worker_id", sa.String(length=128), nullable=False),
        sa.Column(
            "platforms",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
        sa.Column("active_tasks", sa.Integer(), server_default="0", nullable=False),
        sa.Column("completed_last_minute", sa.Integer(), server_default="0", nullable=False),
        sa.Column("failed_last_minute", sa.Integer(), server_default="0", nullable=False),
        sa.Column("cpu_percent", sa.Float(), nullable=True),
        sa.Column("memory_percent", sa.Float(), nullable=True),
        sa.Column("is_paused", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column(
            "first_seen_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("last_heartbeat_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("stale_since", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("worker_id", name=op.f("pk_workers")),
    )
    op.create_index("ix_workers_last_heartbeat_at", "workers", ["last_heartbeat_at"])
    op.create_table(
        "worker_commands",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("worker_id", sa.String(length=128), nullable=False),
        sa.Column("command", sa.String(length=16), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "command IN ('pause', 'resume', 'shutdown')",
            name=op.f("ck_worker_commands_command_known"),
        ),
        sa.ForeignKeyConstraint(
            ["worker_id"],
            ["workers.worker_id"],
            name=op.f("fk_worker_commands_worker_id_workers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_worker_commands")),
    )
    op.create_index(
        "ix_worker_commands_pending",
        "worker_commands",
        ["worker_id", "id"],
        postgresql_where=sa.text("delivered_at IS NULL"),
    )
    # Dead-letter listing filters by platform and reason, newest first.
    op.create_index(
        "ix_scrape_tasks_dead",
        "scrape_tasks",
        ["platform", "last_error_reason", "finished_at"],
        postgresql_where=sa.text("status = 'dead'"),
    )
    # The heartbeat and the stale-worker reaper look leases up by holder.
    op.create_index(
        "ix_scrape_tasks_leased_by",
        "scrape_tasks",
        ["leased_by"],
        postgresql_where=sa.text("status = 'leased'"),
    )


def downgrade() -> None:
    op.drop_index("ix_scrape_tasks_leased_by", table_name="scrape_tasks")
    op.drop_index("ix_scrape_tasks_dead", table_name="scrape_tasks")
    op.drop_index("ix_worker_commands_pending", table_name="worker_commands")
    op.drop_table("worker_commands")
    op.drop_index("ix_workers_last_heartbeat_at", table_name="workers")
    op.drop_table("workers")
    op.execute("DROP SEQUENCE scrape_task_lease_token_seq")
