"""Public API: API keys, usage counters and search indexes

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26

- ``api_keys``: only the sha256 of each key is kept, with a short non-secret prefix.
- Keyset indexes for the public search: (scope columns, sort key, id) for each sort key
  (total due, assessed value, due-to-value ratio, updated) and scope (county, state, nation).
- Substring search on owner and situs address: ``pg_trgm`` is not shipped with the embedded
  PostgreSQL (``pgserver`` has no contrib modules), so a core-only equivalent is used: an
  IMMUTABLE function returns a text's trigrams as ``text[]`` and a GIN index (built-in
  ``array_ops``) answers ``trigrams(column) @> trigrams(query)``; the query then rechecks
  the substring itself. Daily usage counters live in Redis, not here.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

RATIO = "(total_due / NULLIF(assessed_value, 0))"
SORT_KEYS = {"due": "total_due", "value": "assessed_value", "ratio": RATIO, "updated": "updated_at"}
SCOPES = {"county": "state, county, ", "state": "state, ", "nation": ""}

NORMALIZE_FUNCTION = """
CREATE FUNCTION public_text_normalize(value text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN btrim(regexp_replace(lower(value), '\\s+', ' ', 'g'))
"""
# A loop in PL/pgSQL: about six times faster than a set-returning SQL body, which matters
# because every parcel insert and update evaluates it twice (owner and address index).
# Duplicates are left in: GIN keeps each key once per row anyway.
TRIGRAMS_FUNCTION = """
CREATE FUNCTION public_text_trigrams(value text) RETURNS text[]
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
  normalized text := public_text_normalize(value);
  trigrams text[] := '{}';
BEGIN
  FOR n IN 1 .. length(normalized) - 2 LOOP
    trigrams := trigrams || substr(normalized, n, 3);
  END LOOP;
  RETURN trigrams;
END
$$
"""


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("tier", sa.String(length=32), nullable=False),
        sa.Column("owner", sa.Text(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("rotated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("prefix", name=op.f("uq_api_keys_prefix")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_api_keys_key_hash")),
    )
    for scope, scope_columns in SCOPES.items():
        for key, sort_expression in SORT_KEYS.items():
            op.execute(
                f"CREATE INDEX ix_parcels_search_{scope}_{key} "
                f"ON parcels ({scope_columns}{sort_expression}, id)"
            )
    op.execute(NORMALIZE_FUNCTION)
    op.execute(TRIGRAMS_FUNCTION)
    op.execute(
        "CREATE INDEX ix_parcels_owner_trigrams ON parcels "
        "USING gin (public_text_trigrams(owner_name))"
    )
    op.execute(
        "CREATE INDEX ix_parcels_address_trigrams ON parcels "
        "USING gin (public_text_trigrams(situs_address))"
    )


def downgrade() -> None:
    op.execute("DROP INDEX ix_parcels_address_trigrams")
    op.execute("DROP INDEX ix_parcels_owner_trigrams")
    op.execute("DROP FUNCTION public_text_trigrams(text)")
    op.execute("DROP FUNCTION public_text_normalize(text)")
    for scope in SCOPES:
        for key in SORT_KEYS:
            op.execute(f"DROP INDEX ix_parcels_search_{scope}_{key}")
    op.drop_table("api_keys")
