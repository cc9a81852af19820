"""The batch ingest: a chunk of result items becomes parcels, snapshots and finished tasks.

Per chunk: the items are COPY'd into a temporary staging table, then ONE statement upserts
the parcels and inserts the snapshots, and the ledger tasks are marked succeeded, all in the
caller's transaction. Properties the statements guarantee:

- redelivery changes nothing: a snapshot of the same (parcel, platform, scraped_at) is
  inserted once, and a row is touched only by a strictly newer ``scraped_at``;
- unchanged data is never rewritten: a newer scrape with an equal ``data_hash`` only advances
  the parcel's ``scraped_at`` (no index covers it, so that is a cheap HOT update);
- an older scrape never wins: ``parcels.scraped_at`` is the newest scrape applied, whether its
  data changed or not, and a parcel is updated only by a strictly newer ``scraped_at``;
- every distinct scrape is kept as a snapshot, whatever order scrapes arrive in.
"""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.dialects.postgresql.base import PGDialect
from sqlalchemy.orm import Session

from db.models.parcels import Parcel, identity_text_sql
from services.dispatch.completion import TaskResult, mark_tasks_succeeded
from services.ingest.fields import TYPED_COLUMNS
from services.ingest.items import ItemError, ResultItem, validate_result_items
from services.text_trigrams import text_trigrams

Identity = tuple[str, str, str]
_IDENTITY_COLUMNS = ("state", "county", "parcel_key")
_SCRAPE_COLUMNS = ("parcel_id", "platform", "scraped_at", "data", "data_hash", "raw_html_hash")
# Substring search keys, from the typed owner and address (services.text_trigrams).
_TRIGRAM_COLUMNS = ("owner_trigrams", "address_trigrams")
_PARCEL_COLUMNS = (*_IDENTITY_COLUMNS, *_SCRAPE_COLUMNS, *TYPED_COLUMNS, *_TRIGRAM_COLUMNS)
_STAGING_COLUMNS = ("row_number", "is_newest", "task_id", *_PARCEL_COLUMNS)
_POSTGRES = PGDialect()  # type: ignore[no-untyped-call]  # SQLAlchemy leaves it unannotated
# Staging columns have the parcels table's own types, read from the model (where they are
# written once); only the first three are staging's own.
_STAGING_TYPES = {
    "row_number": "integer",
    "is_newest": "boolean",
    "task_id": "uuid",
    **{
        column: Parcel.__table__.c[column].type.compile(dialect=_POSTGRES)
        for column in _PARCEL_COLUMNS
    },
}
# Staged rows find their parcel through the expression index on the identity text
# (migrations 0003, 0006), one index probe per staged row: a LATERAL subquery with LIMIT is never
# flattened into a join, so the planner cannot choose a hash join over a scan of the whole
# parcels table (which it did for a staging table without statistics, growing with parcels).
_ON_IDENTITY = f"{identity_text_sql('p')} = {identity_text_sql('s')}"
_PARCEL_LIST = ", ".join(_PARCEL_COLUMNS)
# A strictly newer scrape always advances scraped_at; everything else (updated_at included,
# which search indexes cover) is rewritten only when the data changed.
_UPDATE_LIST = ", ".join(
    [
        "scraped_at = excluded.scraped_at",
        *(
            f"{c} = CASE WHEN p.data_hash <> excluded.data_hash THEN excluded.{c} ELSE p.{c} END"
            for c in (*_SCRAPE_COLUMNS, *TYPED_COLUMNS, *_TRIGRAM_COLUMNS)
            if c not in ("scraped_at", "data_hash")
        ),
        "updated_at = CASE WHEN p.data_hash <> excluded.data_hash"
        " THEN statement_timestamp() ELSE p.updated_at END",
        "data_hash = excluded.data_hash",  # equal when unchanged
    ]
)

# One staging table per connection, emptied by every commit: creating and dropping it per
# chunk would cost catalog writes each time and bloat the catalog.
_CREATE_STAGING = (
    "CREATE TEMP TABLE IF NOT EXISTS ingest_staging_rows ("
    + ", ".join(f"{c} {_STAGING_TYPES[c]}" for c in _STAGING_COLUMNS)
    + ") ON COMMIT DELETE ROWS"
)
_COPY_STAGING = f"COPY ingest_staging_rows ({', '.join(_STAGING_COLUMNS)}) FROM STDIN"
# One statement per chunk writes parcels and snapshots. ``found`` is what was there before
# it (the statement's snapshot). Rows whose parcel already holds this or a newer scrape (a
# redelivery, a stale scrape) are left out of the upsert: the upsert's own guard would refuse
# them anyway, and left out they are not even locked. The guard (``p.scraped_at <
# excluded.scraped_at``, re-checked on the locked row) is what decides under concurrency: a
# transaction that committed a newer scrape meanwhile, changed or not, wins. The upsert
# returns whether it rewrote the data: ``updated_at`` is set to the statement's timestamp
# only then (``now()`` would not tell two chunks of one transaction apart). A
# snapshot takes its parcel's id from ``found`` or, for a parcel inserted now, from the
# upsert; a row that has neither (a parcel another transaction inserted meanwhile with a
# newer scrape) is ``unplaced`` and its snapshot written by a second statement. It answers
# each staged row's outcome, so a batch made of several senders' items can tell each its own.
_INGEST_CHUNK = f"""
WITH found AS MATERIALIZED (
    SELECT s.row_number, e.id, e.data_hash, e.scraped_at,
        s.is_newest AND (e.id IS NULL OR e.scraped_at < s.scraped_at) AS is_admitted
    FROM ingest_staging_rows s
    LEFT JOIN LATERAL (
        SELECT p.id, p.data_hash, p.scraped_at FROM parcels p WHERE {_ON_IDENTITY} LIMIT 1
    ) e ON true
), upserted AS (
    INSERT INTO parcels AS p ({_PARCEL_LIST})
    SELECT {", ".join(f"s.{c}" for c in _PARCEL_COLUMNS)}
    FROM ingest_staging_rows s JOIN found f ON f.row_number = s.row_number
    WHERE f.is_admitted
    ORDER BY s.state, s.county, s.parcel_key
    ON CONFLICT ON CONSTRAINT uq_parcels_identity DO UPDATE
    SET {_UPDATE_LIST}
    WHERE p.scraped_at < excluded.scraped_at
    RETURNING p.id, p.state, p.county, p.parcel_key, xmax = 0 AS is_inserted,
        p.updated_at = statement_timestamp() AS is_rewritten
), placed AS (
    SELECT coalesce(f.id, u.id) AS parcel_row_id, s.platform, s.scraped_at, s.data,
        s.data_hash, s.raw_html_hash, s.task_id
    FROM ingest_staging_rows s
    JOIN found f ON f.row_number = s.row_number
    LEFT JOIN upserted u
        ON u.state = s.state AND u.county = s.county AND u.parcel_key = s.parcel_key
), snapshots AS (
    INSERT INTO parcel_snapshots
        (parcel_id, platform, scraped_at, data, data_hash, raw_html_hash, task_id)
    SELECT parcel_row_id, platform, scraped_at, data, data_hash, raw_html_hash, task_id
    FROM placed WHERE parcel_row_id IS NOT NULL
    ORDER BY parcel_row_id, scraped_at
    ON CONFLICT (parcel_id, platform, scraped_at) DO NOTHING
)
SELECT s.row_number,
    CASE WHEN NOT s.is_newest THEN NULL
        WHEN u.is_inserted THEN 'inserted'
        WHEN u.id IS NOT NULL AND u.is_rewritten THEN 'updated'
        WHEN u.id IS NOT NULL THEN 'unchanged'
        WHEN NOT f.is_admitted AND f.data_hash = s.data_hash THEN 'unchanged'
        ELSE 'stale' END AS outcome,
    f.id IS NULL AND u.id IS NULL AS is_unplaced
FROM ingest_staging_rows s
JOIN found f ON f.row_number = s.row_number
LEFT JOIN upserted u ON u.state = s.state AND u.county = s.county AND u.parcel_key = s.parcel_key
"""
# Only after a concurrent insert (see above): a new statement sees the committed parcel.
_INSERT_UNPLACED_SNAPSHOTS = f"""
INSERT INTO parcel_snapshots
    (parcel_id, platform, scraped_at, data, data_hash, raw_html_hash, task_id)
SELECT p.id, s.platform, s.scraped_at, s.data, s.data_hash, s.raw_html_hash, s.task_id
FROM ingest_staging_rows s JOIN LATERAL (
    SELECT p.id FROM parcels p WHERE {_ON_IDENTITY} LIMIT 1
) p ON true
ORDER BY p.id, s.scraped_at
ON CONFLICT (parcel_id, platform, scraped_at) DO NOTHING
"""


Outcome = str  # "inserted", "updated", "unchanged" or "stale"
OUTCOMES: tuple[Outcome, ...] = ("inserted", "updated", "unchanged", "stale")


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
    item_outcomes: list[Outcome] = field(default_factory=list)  # per ingested item, in order

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
    item_outcomes: list[Outcome] = [""] * len(items)
    for position, outcome_of_copy in _superseded_outcomes(items, newest, superseded):
        item_outcomes[position] = outcome_of_copy
    staged = [*newest.values(), *_distinct_scrapes(items, superseded)]
    buffer = _staging_text([items[p] for p in staged], len(newest), outcome.unparsed)

    session.flush()
    # An earlier chunk of this transaction may have left rows: one round trip for both.
    session.execute(text(f"{_CREATE_STAGING}; DELETE FROM ingest_staging_rows"))
    _copy_staging(session, buffer)
    has_unplaced = False
    for row in session.execute(text(_INGEST_CHUNK)):
        has_unplaced |= bool(row.is_unplaced)
        if row.outcome is not None:
            item_outcomes[staged[row.row_number]] = row.outcome
    if has_unplaced:
        session.execute(text(_INSERT_UNPLACED_SNAPSHOTS))
    tally = Counter(item_outcomes)
    outcome.inserted, outcome.updated = tally["inserted"], tally["updated"]
    outcome.unchanged, outcome.stale = tally["unchanged"], tally["stale"]
    outcome.item_outcomes = item_outcomes
    mark_tasks_succeeded(
        session,
        {
            TaskResult(item.task_id, item.platform, item.state, item.county, item.parcel_key)
            for item in items
            if item.task_id
        },
    )
    return outcome


def _pick_newest(items: Sequence[ResultItem]) -> tuple[dict[Identity, int], list[int]]:
    """Positions of one item per parcel (the latest scrape; on a tie the later item) and of
    the rest.

    ON CONFLICT cannot touch a row twice in one statement, so a chunk holding two scrapes
    of one parcel is collapsed first.
    """
    newest: dict[Identity, int] = {}
    superseded: list[int] = []
    for position, item in enumerate(items):
        current = newest.get(item.identity)
        if current is None:
            newest[item.identity] = position
        elif item.scraped_at >= items[current].scraped_at:
            superseded.append(current)
            newest[item.identity] = position
        else:
            superseded.append(position)
    return newest, superseded


def _superseded_outcomes(
    items: Sequence[ResultItem], newest: dict[Identity, int], superseded: Iterable[int]
) -> Iterable[tuple[int, Outcome]]:
    """Items that lost to a newer item of the same chunk: a copy of it is unchanged."""
    for position in superseded:
        item, winner = items[position], items[newest[items[position].identity]]
        is_copy = item.scraped_at == winner.scraped_at and item.data_hash == winner.data_hash
        yield position, "unchanged" if is_copy else "stale"


def _distinct_scrapes(items: Sequence[ResultItem], positions: Iterable[int]) -> list[int]:
    """Positions of the superseded items worth a snapshot: one per distinct scrape."""
    seen: set[tuple[str, str, str, str, datetime]] = set()
    distinct = []
    for position in positions:
        item = items[position]
        key = (*item.identity, item.platform, item.scraped_at)
        if key not in seen:
            seen.add(key)
            distinct.append(position)
    return distinct


def _staging_text(staged: Sequence[ResultItem], newest_count: int, unparsed: Counter[str]) -> str:
    """The COPY text of a chunk: typed columns only for the rows that reach ``parcels`` (the
    first ``newest_count``); row numbers are positions in ``staged``."""
    lines = []
    for number, item in enumerate(staged[:newest_count]):
        if item.unparsed:
            unparsed.update(item.unparsed)
        pairs = zip(_COPY_TYPED, item.typed, strict=True)
        tail = "\t".join([_NULL if value is None else copy(value) for copy, value in pairs])
        owner, address = item.typed[_OWNER], item.typed[_ADDRESS]
        lines.append(
            f"{_staging_head(item, number, 't')}{tail}\t{_trigrams_copy(owner)}\t"
            f"{_trigrams_copy(address)}"
        )
    no_typed_values = "\t".join([_NULL] * (len(TYPED_COLUMNS) + len(_TRIGRAM_COLUMNS)))
    for number, item in enumerate(staged[newest_count:], start=newest_count):
        lines.append(_staging_head(item, number, "f") + no_typed_values)
    lines.append("")
    return "\n".join(lines)


def _staging_head(item: ResultItem, number: int, is_newest: str) -> str:
    """The columns before the typed ones, each followed by a tab."""
    return (
        f"{number}\t{is_newest}\t{item.task_id or _NULL}\t{_escape(item.state)}\t"
        f"{_escape(item.county)}\t{_escape(item.parcel_key)}\t{_escape(item.parcel_id)}\t"
        f"{_escape(item.platform)}\t{item.scraped_at.isoformat()}\t{_escape(item.data_json)}\t"
        f"{item.data_hash}\t{item.raw_html_hash or _NULL}\t"
    )


def _escape(value: str) -> str:
    if "\\" in value or "\t" in value or "\n" in value or "\r" in value:
        value = value.replace("\\", "\\\\").replace("\t", "\\t")
        value = value.replace("\n", "\\n").replace("\r", "\\r")
    return value


_NULL = "\\N"
# Each typed column holds one type (see services.ingest.values): text is escaped; numbers,
# dates and flags print as PostgreSQL reads them (str(True) is "True", a valid boolean).
_TEXT_COLUMNS = frozenset({"owner_name", "situs_address", "city", "zip", "property_type"})
_COPY_TYPED: tuple[Callable[[Any], str], ...] = tuple(
    _escape if column in _TEXT_COLUMNS else str for column in TYPED_COLUMNS
)


_OWNER = TYPED_COLUMNS.index("owner_name")
_ADDRESS = TYPED_COLUMNS.index("situs_address")


def _trigrams_copy(value: str | None) -> str:
    """The COPY text of a ``text[]`` of the value's trigrams: each element quoted."""
    trigrams = text_trigrams(value)
    if trigrams is None:
        return _NULL
    if not trigrams:
        return "{}"
    if any('"' in t or "\\" in t for t in trigrams):  # rare: names are letters and spaces
        trigrams = [t.replace("\\", "\\\\").replace('"', '\\"') for t in trigrams]
    return _escape('{"' + '","'.join(trigrams) + '"}')


def _copy_staging(session: Session, buffer: str) -> None:
    cursor = session.connection().connection.cursor()
    try:
        cursor.copy_expert(_COPY_STAGING, io.StringIO(buffer))  # psycopg2: COPY FROM STDIN
    finally:
        cursor.close()
