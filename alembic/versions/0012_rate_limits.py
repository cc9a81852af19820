"""Start limits per platform and per (platform, county): the politeness table.

``county`` '' stands for the whole platform, so the pair is a plain primary key (a NULL
county could not be). Limits go with their platform if it is ever deleted.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "rate_limits",
        sa.Column("platform", sa.String(length=64), nullable=False),
        sa.Column("county", sa.String(length=64), server_default="", nullable=False),
        sa.Column("per_minute", sa.Integer(), nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("per_minute > 0", name=op.f("ck_rate_limits_per_minute_positive")),
        sa.ForeignKeyConstraint(
            ["platform"],
            ["platforms.name"],
            name=op.f("fk_rate_limits_platform_platforms"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("platform", "county", name=op.f("pk_rate_limits")),
    )


def downgrade() -> None:
    op.drop_table("rate_limits")
