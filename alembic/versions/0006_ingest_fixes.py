"""The parcel identity text index becomes non-unique: uniqueness stays with uq_parcels_identity.

Two UNIQUE indexes on one identity broke the ingest upsert: ``ON CONFLICT ON CONSTRAINT
uq_parcels_identity`` arbitrates only that constraint, so two transactions inserting the same
new parcel at once raised a unique violation on the second index instead of taking the
DO UPDATE path. The expression index stays (it is the ingest's lookup path), renamed
``ix_parcels_identity_text`` now that it no longer enforces anything.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_IDENTITY_TEXT = "(((state)::text || '/' || (county)::text || '/' || parcel_key))"


def upgrade() -> None:
    op.execute(f"CREATE INDEX ix_parcels_identity_text ON parcels {_IDENTITY_TEXT}")
    op.drop_index("uq_parcels_identity_text", table_name="parcels")


def downgrade() -> None:
    op.execute(f"CREATE UNIQUE INDEX uq_parcels_identity_text ON parcels {_IDENTITY_TEXT}")
    op.drop_index("ix_parcels_identity_text", table_name="parcels")
