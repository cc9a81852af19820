"""ix_parcels_parcel_key: find a parcel by its id alone

The original public API's ``GET /v1/properties/{parcel_id}`` names no state or county; the
same id may exist in several counties, so every parcel with the key must be found (and
listed when there are several). The identity indexes lead with the state, so without this
index that lookup reads the whole table. Updates keep HOT: the key never changes.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_parcels_parcel_key", "parcels", ["parcel_key"])


def downgrade() -> None:
    op.drop_index("ix_parcels_parcel_key", table_name="parcels")
