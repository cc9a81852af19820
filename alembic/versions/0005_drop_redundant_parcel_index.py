"""Drop ix_parcels_state_county_total_due: ix_parcels_search_county_due (0004) covers it.

(state, county, total_due, id) serves every query the older (state, county, total_due) index
did, and each index less is one write less per ingested parcel.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_parcels_state_county_total_due", table_name="parcels")


def downgrade() -> None:
    op.create_index(
        "ix_parcels_state_county_total_due", "parcels", ["state", "county", "total_due"]
    )
