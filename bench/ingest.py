"""Rows/s of the batch ingest path against a per-row baseline, same database, same run.

The batch path is ``services.ingest.ingest_result_items`` (validation, typed parsing, COPY
into staging, one upsert, one snapshot insert, ledger update) on chunks of the configured
size, one transaction per chunk, exactly what the ingest task runs. The baseline is what the
old gateway did for each row: an existence check, then a single-row INSERT or UPDATE (plus
the snapshot row), with the same validation and typed parsing, one commit per chunk.
Both paths write the same parcels columns on disjoint parcel ids of the same tables.
"""

from __future__ import annotations

import random
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

BATCH_ROWS = 50_000
BASELINE_ROWS = 3_000
T0 = datetime(2026, 11, 1, tzinfo=UTC)
_OWNERS = ("SMITH JOHN", "DOE JANE & JOHN", "DIXIE HOLDINGS LLC", "O'BRIEN PAT", "NGUYEN AN")
_STREETS = ("NE 351 HWY", "SE 19TH AVE", "CR 349", "W MAIN ST", "GULF BLVD")


def make_items(prefix: str, count: int, *, scraped_at: datetime) -> list[dict[str, Any]]:
    rng = random.Random(f"{prefix}-{scraped_at.isoformat()}")
    return [_item(f"{prefix}-{n:07d}", rng, scraped_at) for n in range(count)]


def _item(parcel_id: str, rng: random.Random, scraped_at: datetime) -> dict[str, Any]:
    due = rng.randint(0, 900_000) / 100
    return {
        "task_id": None,
        "parcel_id": parcel_id,
        "platform": "qpublic",
        "state": "FL",
        "county": "Dixie",
        "scraped_at": scraped_at.isoformat(),
        "parse_duration_ms": rng.randint(5, 400),
        "data": {
            "Owner Name": rng.choice(_OWNERS),
            "Property Address": f"{rng.randint(1, 9999)} {rng.choice(_STREETS)}",
            "City": "CROSS CITY",
            "Zip": "32628",
            "Property Use": "SINGLE FAMILY (000100)",
            "Assessed Value": f"${rng.randint(5_000, 900_000):,}.00",
            "Just Value": f"${rng.randint(5_000, 900_000):,}",
            "Land Value": f"{rng.randint(1_000, 90_000):,}",
            "Building Value": f"${rng.randint(0, 500_000):,}.00",
            "Total Due": f"${due:,.2f}",
            "Tax Year": "2025",
            "Delinquent": rng.choice(("Y", "N")),
            "Last Sale Date": _sale_date(rng),
            "Last Sale Price": f"${rng.randint(10, 500):,},000",
            "Heated Area": f"{rng.randint(600, 4000):,} sqft",
            "Acreage": f"{rng.randint(1, 4000) / 100} AC",
            "Legal Description": f"LOT {rng.randint(1, 99)} BLK {rng.randint(1, 20)} SUWANNEE",
        },
    }


def _sale_date(rng: random.Random) -> str:
    return f"{rng.randint(1, 12)}/{rng.randint(1, 28)}/{rng.randint(1990, 2025)}"


def run_batch_path(items: Sequence[dict[str, Any]], *, chunk_size: int) -> float:
    from db.session import session_scope
    from services.ingest import ingest_result_items

    started = time.perf_counter()
    for start in range(0, len(items), chunk_size):
        with session_scope() as session:
            ingest_result_items(session, items[start : start + chunk_size])
    return time.perf_counter() - started


def run_per_row_baseline(items: Sequence[dict[str, Any]], *, chunk_size: int) -> float:
    from db.session import session_scope

    started = time.perf_counter()
    for start in range(0, len(items), chunk_size):
        with session_scope() as session:
            for raw in items[start : start + chunk_size]:
                _upsert_one_row(session, raw)
    return time.perf_counter() - started


_EXISTS = text(
    "SELECT id FROM parcels WHERE state = :state AND county = :county AND parcel_key = :parcel_key"
)


def _row_statements() -> tuple[Any, Any, Any]:
    from services.ingest.fields import TYPED_COLUMNS

    columns = (
        "state", "county", "parcel_key", "parcel_id", "platform", "scraped_at", "data",
        "data_hash", "raw_html_hash", *TYPED_COLUMNS,
    )  # fmt: skip
    values = ", ".join("CAST(:data AS jsonb)" if c == "data" else f":{c}" for c in columns)
    insert = text(f"INSERT INTO parcels ({', '.join(columns)}) VALUES ({values}) RETURNING id")
    assignments = ", ".join(
        f"{c} = CAST(:data AS jsonb)" if c == "data" else f"{c} = :{c}" for c in columns[3:]
    )
    update = text(
        f"UPDATE parcels SET {assignments}, updated_at = now() "
        "WHERE id = :id AND scraped_at < :scraped_at"
    )
    snapshot = text(
        "INSERT INTO parcel_snapshots (parcel_id, platform, scraped_at, data, data_hash) "
        "VALUES (:parcel_row_id, :platform, :scraped_at, CAST(:data AS jsonb), :data_hash) "
        "ON CONFLICT DO NOTHING"
    )
    return insert, update, snapshot


def _upsert_one_row(session: Session, raw: dict[str, Any]) -> None:
    from services.ingest.fields import extract_typed_values
    from services.ingest.items import validate_result_item

    item = validate_result_item(raw, now=datetime.now(UTC))
    params = {
        "state": item.state, "county": item.county, "parcel_key": item.parcel_key,
        "parcel_id": item.parcel_id, "platform": item.platform, "scraped_at": item.scraped_at,
        "data": item.data_json, "data_hash": item.data_hash, "raw_html_hash": item.raw_html_hash,
        **extract_typed_values(item.data).columns,
    }  # fmt: skip
    insert_sql, update_sql, snapshot_sql = _STATEMENTS
    parcel_row_id = session.execute(_EXISTS, params).scalar_one_or_none()
    if parcel_row_id is None:
        parcel_row_id = session.execute(insert_sql, params).scalar_one()
    else:
        session.execute(update_sql, {**params, "id": parcel_row_id})
    session.execute(snapshot_sql, {**params, "parcel_row_id": parcel_row_id})


_STATEMENTS = _row_statements()


def _measure(label: str, rows: int, run: Callable[[], float]) -> float:
    seconds = run()
    rate = rows / seconds
    sys.stdout.write(f"  {label:<44} {rows:>7,} rows in {seconds:6.2f} s = {rate:>9,.0f} rows/s\n")
    return rate


def run() -> None:
    from settings import get_settings

    chunk = get_settings().ingest_chunk_size
    sys.stdout.write(f"bench ingest (chunk size {chunk})\n")
    batch_new = make_items("B", BATCH_ROWS, scraped_at=T0)
    batch_newer = make_items("B", BATCH_ROWS, scraped_at=T0 + timedelta(days=1))
    base_new = make_items("R", BASELINE_ROWS, scraped_at=T0)
    base_newer = make_items("R", BASELINE_ROWS, scraped_at=T0 + timedelta(days=1))

    insert_rate = _measure(
        "batch path, new parcels", BATCH_ROWS, lambda: run_batch_path(batch_new, chunk_size=chunk)
    )
    update_rate = _measure(
        "batch path, newer scrapes (updates)",
        BATCH_ROWS,
        lambda: run_batch_path(batch_newer, chunk_size=chunk),
    )
    _measure(
        "batch path, redelivery (unchanged)",
        BATCH_ROWS,
        lambda: run_batch_path(batch_newer, chunk_size=chunk),
    )
    base_insert = _measure(
        "per-row baseline, new parcels",
        BASELINE_ROWS,
        lambda: run_per_row_baseline(base_new, chunk_size=chunk),
    )
    base_update = _measure(
        "per-row baseline, newer scrapes (updates)",
        BASELINE_ROWS,
        lambda: run_per_row_baseline(base_newer, chunk_size=chunk),
    )
    sys.stdout.write(
        f"  speed-up: inserts {insert_rate / base_insert:.1f}x, "
        f"updates {update_rate / base_update:.1f}x "
        f"(target >= 50,000 rows/s and >= 10x)\n"
    )
