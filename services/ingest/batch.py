"""The batch ingest: a chunk of result items becomes parcels, snapshots and finished tasks.

Per chunk: the items are COPY'd into a temporary staging table, then ONE upsert statement
writes the parcels and ONE insert writes the snapshots, and the ledger tasks are marked
succeeded, all in the caller's transaction. Properties the statements guarantee:

- redelivery changes nothing: an equal ``data_hash`` never rewrites a row, and a snapshot of
  the same (parcel, platform, scraped_at) is inserted once;
- an older scrape never wins: a parcel is updated only by a strictly newer ``scraped_at``;
- every distinct scrape is kept as a snapshot, whatever order scrapes arrive in.
"""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from db.models.parcels import identity_text_sql
from services.dispatch.completion import mark_tasks_succeeded
from services.ingest.fields import TYPED_COLUMNS, extract_typed_values
from services.ingest.items import ItemError, ResultItem, validate_result_items

_IDENTITY_COLUMNS = ("state", "county", "parcel_key")
_SCRAPE_COLUMNS = ("parcel_id", "platform", "scraped_at", "data", "data_hash", "raw_html_hash")
_PARCEL_COLUMNS = (*_IDENTITY_COLUMNS, *_SCRAPE_COLUMNS, *TYPED_COLUMNS)
_STAGING_COLUMNS = ("is_newest", "task_id", *_PARCEL_COLUMNS)
_STAGING_TYPES = {
    "is_newest": "boolean", "task_id": "uuid", "state": "text", "county": "text",
    "parcel_key": "text", "parcel_id": "text", "platform": "text", "scraped_at": "timestamptz",
    "data": "jsonb", "data_hash": "text", "raw_html_hash": "text", "owner_name": "text",
    "situs_address": "text", "city": "text", "zip": "text", "property_type": "text",
    "assessed_value": "numeric", "market_value": "numeric", "land_value": "numeric",
    "improvement_value": "numeric", "total_due": "numeric", "tax_year": "integer",
    "is_delinquent": "boolean", "delinquent_amount": "numeric", "last_sale_date": "date",
    "last_sale_price": "numeric", "living_area_sqft": "integer", "acreage": "numeric",
}  # fmt: skip
# Staged rows find their parcel through the unique expression index on the identity text
# (migration 0003): no other index can serve this expression, so the plan stays an index
# lookup per staged row even while the parcels statistics are missing or stale (a fresh
# table, a newly loaded county), when the (state, county, ...) search indexes look as cheap.
_ON_IDENTITY = f"{identity_text_sql('p')} = {identity_text_sql('s')}"
_PARCEL_LIST = ", ".join(_PARCEL_COLUMNS)
_UPDATE_LIST = ", ".join(f"{c} = excluded.{c}" for c in (*_SCRAPE_COLUMNS, *TYPED_COLUMNS))

# One staging table per connection, emptied by every commit: creating and dropping it per
# chunk would cost catalog writes each time and bloat the catalog.
_CREATE_STAGING = (
    "CREATE TEMP TABLE IF NOT EXISTS ingest_staging ("
    + ", ".join(f"{c} {_STAGING_TYPES[c]}" for c in _STAGING_COLUMNS)
    + ") ON COMMIT DELETE ROWS"
)
_COPY_STAGING = f"COPY ingest_staging ({', '.join(_STAGING_COLUMNS)}) FROM STDIN"
# The existing rows are read in the same snapshot as the upsert: what was there before it.
_UPSERT_PARCELS = f"""
WITH existing AS (
    SELECT s.data_hash = p.data_hash AS is_same
    FROM ingest_staging s JOIN parcels p ON {_ON_IDENTITY}
    WHERE s.is_newest
), upserted AS (
    INSERT INTO parcels AS p ({_PARCEL_LIST})
    SELECT {_PARCEL_LIST} FROM ingest_staging WHERE is_newest
    ORDER BY state, county, parcel_key
    ON CONFLICT ON CONSTRAINT uq_parcels_identity DO UPDATE
    SET {_UPDATE_LIST}, updated_at = now()
    WHERE p.scraped_at < excluded.scraped_at AND p.data_hash <> excluded.data_hash
    RETURNING xmax = 0 AS is_inserted
)
SELECT
    (SELECT count(*) FROM upserted WHERE is_inserted) AS inserted,
    (SELECT count(*) FROM upserted WHERE NOT is_inserted) AS updated,
    (SELECT count(*) FROM existing WHERE is_same) AS unchanged
"""
_INSERT_SNAPSHOTS = f"""
INSERT INTO parcel_snapshots
    (parcel_id, platform, scraped_at, data, data_hash, raw_html_hash, task_id)
SELECT p.id, s.platform, s.scraped_at, s.data, s.data_hash, s.raw_html_hash, s.task_id
FROM ingest_staging s JOIN parcels p ON {_ON_IDENTITY}
ORDER BY p.id, s.scraped_at
ON CONFLICT (parcel_id, platform, scraped_at) DO NOTHING
"""


@dataclass
class IngestOutcome:
    """What happened to each item: every accepted item is counted exactly once."""

    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    stale: int = 0
    rejected: int = 0
    errors: list[ItemError] = field(default_factory=list)
    unparsed: Counter[str] = field(default_factory=Counter)  # typed column -> values

    def counts(self) -> dict[str, int]:
        return {
            "inserted": self.inserted,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "stale": self.stale,
            "rejected": self.rejected,
        }


def ingest_result_items(session: Session, raw_items: Sequence[object]) -> IngestOutcome:
    """Validate raw items (as sent by a scraper), then ingest the valid ones in one batch."""
    items, errors = validate_result_items(raw_items)
    outcome = ingest_items(session, items)
    outcome.rejected, outcome.errors = len(errors), errors
    return outcome


def ingest_items(session: Session, items: Sequence[ResultItem]) -> IngestOutcome:
    """Upsert parcels, add snapshots and mark the items' tasks succeeded; flushes, no commit."""
    outcome = IngestOutcome()
    if not items:
        return outcome
    newest, superseded = _pick_newest(items)
    outcome.unchanged, outcome.stale = _count_superseded(newest, superseded)
    lines = [_staging_line(item, is_newest=True, unparsed=outcome.unparsed) for item in newest]
    lines += [_staging_line(item, is_newest=False) for item in _distinct_scrapes(superseded)]

    session.flush()
    session.execute(text(_CREATE_STAGING))
    session.execute(text("DELETE FROM ingest_staging"))  # an earlier chunk of this transaction
    _copy_lines(session, lines)
    row = session.execute(text(_UPSERT_PARCELS)).one()
    outcome.inserted, outcome.updated = int(row.inserted), int(row.updated)
    outcome.unchanged += int(row.unchanged)
    outcome.stale += len(newest) - outcome.inserted - outcome.updated - int(row.unchanged)
    session.execute(text(_INSERT_SNAPSHOTS))
    mark_tasks_succeeded(session, {item.task_id for item in items if item.task_id})
    return outcome


def _pick_newest(items: Sequence[ResultItem]) -> tuple[list[ResultItem], list[ResultItem]]:
    """One item per parcel (the latest scrape; on a tie the later item) and the rest.

    ON CONFLICT cannot touch a row twice in one statement, so a chunk holding two scrapes
    of one parcel is collapsed first.
    """
    newest: dict[tuple[str, str, str], ResultItem] = {}
    superseded: list[ResultItem] = []
    for item in items:
        current = newest.get(item.identity)
        if current is None:
            newest[item.identity] = item
        elif item.scraped_at >= current.scraped_at:
            superseded.append(current)
            newest[item.identity] = item
        else:
            superseded.append(item)
    return list(newest.values()), superseded


def _count_superseded(
    newest: Iterable[ResultItem], superseded: Iterable[ResultItem]
) -> tuple[int, int]:
    """(unchanged, stale) among items that lost to a newer item of the same chunk."""
    winners = {item.identity: item for item in newest}
    unchanged = stale = 0
    for item in superseded:
        winner = winners[item.identity]
        is_copy = item.scraped_at == winner.scraped_at and item.data_hash == winner.data_hash
        unchanged += is_copy
        stale += not is_copy
    return unchanged, stale


def _distinct_scrapes(items: Iterable[ResultItem]) -> list[ResultItem]:
    seen: set[tuple[str, str, str, str, datetime]] = set()
    distinct = []
    for item in items:
        key = (*item.identity, item.platform, item.scraped_at)
        if key not in seen:
            seen.add(key)
            distinct.append(item)
    return distinct


def _staging_line(
    item: ResultItem, *, is_newest: bool, unparsed: Counter[str] | None = None
) -> str:
    """One line of COPY text format; typed columns only for the rows that reach ``parcels``."""
    head = [
        "t" if is_newest else "f",
        str(item.task_id) if item.task_id else None,
        item.state,
        item.county,
        item.parcel_key,
        item.parcel_id,
        item.platform,
        item.scraped_at.isoformat(),
        item.data_json,
        item.data_hash,
        item.raw_html_hash,
    ]
    if is_newest:
        typed = extract_typed_values(item.data)
        if unparsed is not None:
            unparsed.update(typed.unparsed)
        tail = [_copy_value(typed.columns[column]) for column in TYPED_COLUMNS]
    else:
        tail = [None] * len(TYPED_COLUMNS)
    return "\t".join(_copy_text(v) for v in head) + "\t" + "\t".join(_none(v) for v in tail)


def _copy_bool(value: bool) -> str:
    return "t" if value else "f"


# Typed values are of these exact types (see services.ingest.values); dispatch on the type.
_COPY_BY_TYPE: dict[type, Callable[[Any], str]] = {
    str: lambda value: _escape(value),
    Decimal: str,
    int: str,
    date: date.isoformat,
    bool: _copy_bool,
}


def _copy_value(value: Any) -> str | None:
    if value is None:
        return None
    convert = _COPY_BY_TYPE.get(type(value))
    return convert(value) if convert else _escape(str(value))


def _copy_text(value: str | None) -> str:
    return "\\N" if value is None else _escape(value)


def _none(value: str | None) -> str:
    return "\\N" if value is None else value


def _escape(value: str) -> str:
    if "\\" in value or "\t" in value or "\n" in value or "\r" in value:
        value = value.replace("\\", "\\\\").replace("\t", "\\t")
        value = value.replace("\n", "\\n").replace("\r", "\\r")
    return value


def _copy_lines(session: Session, lines: list[str]) -> None:
    buffer = io.StringIO("\n".join(lines) + "\n")
    cursor = session.connection().connection.cursor()
    try:
        cursor.copy_expert(_COPY_STAGING, buffer)  # psycopg2: COPY FROM STDIN
    finally:
        cursor.close()
