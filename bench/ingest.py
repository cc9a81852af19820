"""Rows/s of the batch ingest path against a per-row baseline, same database, same run.

The batch path is ``services.ingest.ingest_result_items`` (validation, typed parsing, COPY
into staging, one statement writing parcels and snapshots, ledger update) on chunks of the
configured size, one transaction per chunk, exactly what the ingest task runs. The baseline
is what the old gateway did for each row: an existence check, then a single-row INSERT or
UPDATE (plus the snapshot row), with the same validation and typed parsing, one commit per
chunk.
Both paths write the same parcels columns on disjoint parcel ids of the same tables.

Then the batch path in ``worker_concurrency`` processes at once (how the ingest queue is
consumed), the same end to end through the broker and a real Celery worker, one-item
messages (as scrape tasks send their results) batched by a real worker, and, as a
diagnostic printed last, the batch path again after dropping the public-search indexes of
migration 0004: what the ingest itself costs without them.
"""

from __future__ import annotations

import multiprocessing
import random
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
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
    sys.stdout.write(f"  {label:<52} {rows:>7,} rows in {seconds:6.2f} s = {rate:>7,.0f} rows/s\n")
    return rate


def _ingest_slice(prefix: str, rows: int, chunk_size: int, start: Any) -> None:
    """One worker process of the parallel run: items built first, then timed by the parent."""
    from db.session import configure_engine

    configure_engine("bench")
    items = make_items(prefix, rows, scraped_at=T0)
    start.wait()
    run_batch_path(items, chunk_size=chunk_size)


def run_batch_parallel(processes: int, rows_each: int, *, chunk_size: int) -> float:
    """The batch path in ``processes`` processes at once, as a worker pool runs ingest tasks."""
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(processes + 1)
    workers = [
        context.Process(target=_ingest_slice, args=(f"P{n}", rows_each, chunk_size, start))
        for n in range(processes)
    ]
    for worker in workers:
        worker.start()
    start.wait()
    started = time.perf_counter()
    for worker in workers:
        worker.join()
    return time.perf_counter() - started


def run_celery_path(items: Sequence[dict[str, Any]], *, chunk_size: int, processes: int) -> float:
    """End to end through the broker: chunks published as ``ingest.parcel_results`` tasks and
    consumed by a real prefork worker of ``processes`` children; timed from the first publish
    to the last chunk's outcome (task JSON, broker, result backend included)."""
    from services.ingest.result_messages import publish_result_chunks, read_ingest_outcomes
    from services.queues import INGEST_QUEUE
    from tests.celery_workers import start_worker
    from tests.waiting import wait_for

    worker = start_worker(
        [INGEST_QUEUE], log_dir=Path(tempfile.mkdtemp(prefix="bench-ingest-")),
        concurrency=processes,
    )  # fmt: skip
    try:
        started = time.perf_counter()
        task_ids = publish_result_chunks(items, chunk_size=chunk_size)

        def is_done() -> bool:
            outcomes = read_ingest_outcomes(task_ids)
            if outcomes.rejected:
                raise RuntimeError(f"items recorded as rejects: {outcomes.rejected[:3]}")
            return not outcomes.unfinished

        wait_for(is_done, timeout_s=600, interval_s=0.05, what="the ingest tasks")
        return time.perf_counter() - started
    finally:
        worker.stop()


def run_one_item_messages(items: Sequence[dict[str, Any]], *, processes: int) -> float:
    """The native Celery path's ingest hop: one message per item, as each scrape task sends
    its result, consumed by a real worker that batches them; timed from the first publish
    until every parcel is in the table."""
    from db.session import session_scope
    from services.ingest.result_messages import INGEST_TASK_NAME
    from services.queues import INGEST_QUEUE
    from tasks.app import app
    from tests.celery_workers import start_worker
    from tests.waiting import wait_for

    worker = start_worker(
        [INGEST_QUEUE], log_dir=Path(tempfile.mkdtemp(prefix="bench-ingest-")),
        concurrency=processes,
    )  # fmt: skip
    count_parcels = text("SELECT count(*) FROM parcels WHERE parcel_id LIKE 'M-%'")

    def all_written() -> bool:
        with session_scope() as session:
            return int(session.scalar(count_parcels) or 0) == len(items)

    try:
        started = time.perf_counter()
        with app.producer_or_acquire() as producer:
            for item in items:
                app.send_task(INGEST_TASK_NAME, args=[[item]], ignore_result=True,
                              producer=producer)  # fmt: skip
        wait_for(all_written, timeout_s=600, interval_s=0.1, what="the one-item messages")
        return time.perf_counter() - started
    finally:
        worker.stop()


def _drop_public_search_indexes() -> int:
    """Diagnostic only: drop the search indexes migration 0004 puts on parcels."""
    from db.session import session_scope

    with session_scope() as session:
        names = session.execute(
            text(
                "SELECT indexname FROM pg_indexes WHERE tablename = 'parcels' AND"
                " (indexname LIKE 'ix_parcels_search_%' OR indexname LIKE 'ix_parcels_%_trigrams')"
            )
        ).scalars()
        dropped = list(names)
        for name in dropped:
            session.execute(text(f'DROP INDEX "{name}"'))
    return len(dropped)


def run() -> None:
    from settings import get_settings

    settings = get_settings()
    chunk = settings.ingest_chunk_size
    sys.stdout.write(f"bench ingest (chunk size {chunk}, one process unless stated)\n")
    batch_new = make_items("B", BATCH_ROWS, scraped_at=T0)
    batch_newer = make_items("B", BATCH_ROWS, scraped_at=T0 + timedelta(days=1))
    base_new = make_items("R", BASELINE_ROWS, scraped_at=T0)
    base_newer = make_items("R", BASELINE_ROWS, scraped_at=T0 + timedelta(days=1))

    rates = {
        "insert": _measure("batch path, new parcels", BATCH_ROWS,
                           lambda: run_batch_path(batch_new, chunk_size=chunk)),
        "update": _measure("batch path, newer scrapes (updates)", BATCH_ROWS,
                           lambda: run_batch_path(batch_newer, chunk_size=chunk)),
        "unchanged": _measure("batch path, redelivery (unchanged)", BATCH_ROWS,
                              lambda: run_batch_path(batch_newer, chunk_size=chunk)),
        "base_insert": _measure("per-row baseline, new parcels", BASELINE_ROWS,
                                lambda: run_per_row_baseline(base_new, chunk_size=chunk)),
        "base_update": _measure("per-row baseline, newer scrapes (updates)", BASELINE_ROWS,
                                lambda: run_per_row_baseline(base_newer, chunk_size=chunk)),
        "base_unchanged": _measure("per-row baseline, redelivery", BASELINE_ROWS,
                                   lambda: run_per_row_baseline(base_newer, chunk_size=chunk)),
    }  # fmt: skip
    processes = settings.worker_concurrency
    _measure(
        f"batch path, new parcels, {processes} processes",
        processes * BATCH_ROWS // 2,
        lambda: run_batch_parallel(processes, BATCH_ROWS // 2, chunk_size=chunk),
    )
    _measure(
        f"celery ingest tasks, new parcels, {processes} processes",
        BATCH_ROWS,
        lambda: run_celery_path(
            make_items("Q", BATCH_ROWS, scraped_at=T0), chunk_size=chunk, processes=processes
        ),
    )
    one_item_rows = BATCH_ROWS // 5
    _measure(
        f"one-item messages (as scrape tasks send), {processes} processes",
        one_item_rows,
        lambda: run_one_item_messages(
            make_items("M", one_item_rows, scraped_at=T0), processes=processes
        ),
    )
    ratios = ", ".join(
        f"{kind} {rates[kind] / rates['base_' + kind]:.1f}x"
        for kind in ("insert", "update", "unchanged")
    )
    sys.stdout.write(f"  batch path over per-row baseline: {ratios} (target >= 10x, >= 50,000/s)\n")
    dropped = _drop_public_search_indexes()
    label = f"diagnostic, {dropped} search indexes dropped"
    fresh = make_items("D", BATCH_ROWS, scraped_at=T0)
    fresh_newer = make_items("D", BATCH_ROWS, scraped_at=T0 + timedelta(days=1))
    _measure(f"{label}: new", BATCH_ROWS, lambda: run_batch_path(fresh, chunk_size=chunk))
    _measure(f"{label}: updates", BATCH_ROWS, lambda: run_batch_path(fresh_newer, chunk_size=chunk))
