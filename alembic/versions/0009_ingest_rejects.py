"""Ingest rejects (accepted items that could not be written) and a linear trigram function.

``ingest_rejects`` keeps every accepted result item that did not become a parcel row, with its
reason and the payload as sent, so nothing accepted is ever dropped.

``public_text_trigrams`` took time quadratic in the text's length (``substr`` walks a UTF-8
text from its start on every call: 40,000 characters took 9 s), so one long owner name could
hold an ingest past its time limit. Long texts now walk the characters once; short ones keep
the ``substr`` loop, which is faster below a few hundred characters. The output is the same
for every input, so the indexes built on it stay valid.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_QUADRATIC_TRIGRAMS_BODY = """
DECLARE
  normalized text := public_text_normalize(value);
  trigrams text[] := '{}';
BEGIN
  FOR n IN 1 .. length(normalized) - 2 LOOP
    trigrams := trigrams || substr(normalized, n, 3);
  END LOOP;
  RETURN trigrams;
END
"""
_LINEAR_TRIGRAMS_BODY = """
DECLARE
  normalized text := public_text_normalize(value);
  trigrams text[] := '{}';
  first text;
  second text;
  third text;
BEGIN
  IF length(normalized) <= 128 THEN
    FOR n IN 1 .. length(normalized) - 2 LOOP
      trigrams := trigrams || substr(normalized, n, 3);
    END LOOP;
    RETURN trigrams;
  END IF;
  FOREACH third IN ARRAY string_to_array(normalized, NULL) LOOP
    IF first IS NOT NULL THEN
      trigrams := trigrams || (first || second || third);
    END IF;
    first := second;
    second := third;
  END LOOP;
  RETURN trigrams;
END
"""


def _trigrams_function(body: str) -> str:
    return (
        "CREATE OR REPLACE FUNCTION public_text_trigrams(value text) RETURNS text[]"
        f" LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $${body}$$"
    )


def upgrade() -> None:
    op.create_table(
        "ingest_rejects",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("reason_code", sa.String(length=32), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("task_id", sa.Uuid(), nullable=True),
        sa.Column("platform", sa.String(length=64), nullable=True),
        sa.Column("parcel_id", sa.Text(), nullable=True),
        sa.Column("request_id", sa.String(length=128), nullable=True),
        sa.Column("message_id", sa.String(length=64), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ingest_rejects")),
    )
    op.create_index("ix_ingest_rejects_created_at", "ingest_rejects", ["created_at"])
    op.create_index("ix_ingest_rejects_task_id", "ingest_rejects", ["task_id"])
    op.execute(_trigrams_function(_LINEAR_TRIGRAMS_BODY))


def downgrade() -> None:
    op.execute(_trigrams_function(_QUADRATIC_TRIGRAMS_BODY))
    op.drop_index("ix_ingest_rejects_task_id", table_name="ingest_rejects")
    op.drop_index("ix_ingest_rejects_created_at", table_name="ingest_rejects")
    op.drop_table("ingest_rejects")
