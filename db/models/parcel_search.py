"""Indexes and SQL expressions that the public search (``services/public``) relies on.

They sit on the ``parcels`` table, which the ingestion code owns; they are declared here so
the metadata knows them, and created by migration 0004.

Substring search on owner and address uses a GIN index over an array of the text's
trigrams, stored with the parcel (``services.text_trigrams``, computed by the ingest).
``pg_trgm`` would be the usual choice, but the embedded PostgreSQL (``pgserver``) ships without
contrib modules, so the same idea is built from core parts: a substring's trigrams all occur in
any text that contains it. (Migration 0004 indexed a PL/pgSQL function's trigrams; computing
them in the database cost about half of every parcel write.)
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, Index, Numeric, literal_column, text, type_coerce

from db.models.parcels import Parcel

# The exact text of the index expression; queries must spell it the same way to use the index.
DUE_TO_VALUE_SQL = "(total_due / NULLIF(assessed_value, 0))"


def due_to_value_ratio() -> ColumnElement[object]:
    """Total due divided by assessed value; NULL when either is unknown or the value is 0."""
    return type_coerce(literal_column(DUE_TO_VALUE_SQL), Numeric())


# One keyset index per sort key and scope (county, state, nation); ``id`` breaks ties so the
# order is total and a cursor (value, id) maps onto one index range.
_SORT_COLUMNS: dict[str, ColumnElement[object]] = {
    "due": Parcel.__table__.c.total_due,
    "value": Parcel.__table__.c.assessed_value,
    "ratio": text(DUE_TO_VALUE_SQL),  # type: ignore[dict-item]
    "updated": Parcel.__table__.c.updated_at,
}
_SCOPES: dict[str, tuple[ColumnElement[object], ...]] = {
    "county": (Parcel.__table__.c.state, Parcel.__table__.c.county),
    "state": (Parcel.__table__.c.state,),
    "nation": (),
}

SEARCH_INDEXES = [
    Index(f"ix_parcels_search_{scope}_{key}", *columns, sort_column, Parcel.__table__.c.id)
    for scope, columns in _SCOPES.items()
    for key, sort_column in _SORT_COLUMNS.items()
]
OWNER_TRIGRAM_INDEX = Index(
    "ix_parcels_owner_trigrams", Parcel.__table__.c.owner_trigrams, postgresql_using="gin"
)
ADDRESS_TRIGRAM_INDEX = Index(
    "ix_parcels_address_trigrams", Parcel.__table__.c.address_trigrams, postgresql_using="gin"
)
