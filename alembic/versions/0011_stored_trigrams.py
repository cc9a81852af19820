"""Owner and address trigrams stored with the parcel instead of computed by an index function.

The substring search indexes (0004) were GIN indexes over ``public_text_trigrams(column)``, a
PL/pgSQL function that PostgreSQL evaluated twice for every parcel written: about 34 µs a call,
half the cost of a parcel insert. The ingest now computes the trigrams in Python
(``services.text_trigrams``, same normalisation) and stores them in ``owner_trigrams`` and
``address_trigrams``; the GIN indexes, under their old names, cover those columns. Existing
rows are filled by the function once, here. The function stays for that and for the
downgrade.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COLUMNS = {"owner": "owner_name", "address": "situs_address"}


def upgrade() -> None:
    for name in _COLUMNS:
        op.add_column("parcels", sa.Column(f"{name}_trigrams", postgresql.ARRAY(sa.Text())))
        op.drop_index(f"ix_parcels_{name}_trigrams", table_name="parcels")
    assignments = ", ".join(
        f"{name}_trigrams = CASE WHEN {column} IS NULL THEN NULL"
        f" ELSE ARRAY(SELECT DISTINCT unnest(public_text_trigrams({column}))) END"
        for name, column in _COLUMNS.items()
    )
    op.execute(f"UPDATE parcels SET {assignments}")
    for name in _COLUMNS:
        op.create_index(
            f"ix_parcels_{name}_trigrams", "parcels", [f"{name}_trigrams"], postgresql_using="gin"
        )


def downgrade() -> None:
    for name, column in _COLUMNS.items():
        op.drop_index(f"ix_parcels_{name}_trigrams", table_name="parcels")
        op.execute(
            f"CREATE INDEX ix_parcels_{name}_trigrams ON parcels"
            f" USING gin (public_text_trigrams({column}))"
        )
        op.drop_column("parcels", f"{name}_trigrams")
