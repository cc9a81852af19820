"""the original gateway's and the scraper fleet's platforms

The original gateway leased from ``beacon``, ``qpublic`` and ``floridatax`` by default, and
the scraper fleet scrapes ``tyler`` and ``bid4assets`` too; workers written for either name
them. ``qpublic`` exists since 0001; the others are added unless an operator already did.
Downgrade removes these names again where no task refers to them.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ADDED_PLATFORMS = [
    ("beacon", "Beacon (Schneider) assessor sites; a default platform of the original gateway"),
    ("floridatax", "Florida county tax collector sites; a default of the original gateway"),
    ("tyler", "Tyler Technologies iasWorld assessor sites"),
    ("bid4assets", "Bid4Assets tax-sale auction listings"),
]


def upgrade() -> None:
    insert = sa.text(
        "INSERT INTO platforms (name, description) VALUES (:name, :description) "
        "ON CONFLICT (name) DO NOTHING"
    )
    for name, description in ADDED_PLATFORMS:
        op.execute(insert.bindparams(name=name, description=description))


def downgrade() -> None:
    op.execute(
        sa.text(
            "DELETE FROM platforms p WHERE p.name IN :names "
            "AND NOT EXISTS (SELECT 1 FROM scrape_tasks t WHERE t.platform = p.name)"
        ).bindparams(sa.bindparam("names", [n for n, _ in ADDED_PLATFORMS], expanding=True))
    )
