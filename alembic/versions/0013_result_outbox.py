"""The result outbox: accepted ingest messages kept until the ingest has written them.

The broker message was the only record of an accepted result, and kombu's Redis transport
can lose one (a Redis killed between its BRPOP and the MULTI that records the message as
unacked). ``POST /internal/results`` now commits a row per message before publishing; the
ingest deletes it with the items it writes; rows that outlive a grace are re-published.
Rows live seconds, so the table stays small; ``created_at`` is what the re-publish scans.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "result_outbox",
        sa.Column("message_id", sa.String(length=64), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("request_id", sa.String(length=128), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("republished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("republish_count", sa.Integer(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("message_id", name=op.f("pk_result_outbox")),
    )
    op.create_index("ix_result_outbox_created_at", "result_outbox", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_result_outbox_created_at", table_name="result_outbox")
    op.drop_table("result_outbox")
