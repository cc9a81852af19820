"""The batch ingest against a real PostgreSQL: counts, idempotence, the scraped_at guard."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from db.models import Parcel, ParcelSnapshot, ScrapeTask, TaskStatus
from services.ingest import ingest_result_items
from tests.shared_data import DIXIE_PARCEL_IDS

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def result_item(parcel_id: str = "1-32-4N-4W-0000-00322-0300", **overrides: Any) -> dict[str, Any]:
    item: dict[str, Any] = {
        "task_id": str(uuid.uuid4()),
        "parcel_id": parcel_id,
        "platform": "qpublic",
        "state": "FL",
        "county": "Dixie",
        "data": {"owner": "SMITH JOHN", "total_due": "$1,234.56", "tax_year": "2025"},
        "scraped_at": T0.isoformat(),
        "parse_duration_ms": 12.5,
    }
    item.update(overrides)
    return item


def parcels(session: Session) -> list[Parcel]:
    session.expire_all()
    return list(session.execute(select(Parcel).order_by(Parcel.id)).scalars())


def snapshot_count(session: Session) -> int:
    return session.execute(select(func.count()).select_from(ParcelSnapshot)).scalar_one()


def test_a_new_parcel_is_inserted_with_typed_columns_and_raw_data(db_session: Session) -> None:
    outcome = ingest_result_items(db_session, [result_item()])
    db_session.commit()

    assert outcome.counts() == {
        "inserted": 1, "updated": 0, "unchanged": 0, "stale": 0, "rejected": 0,
    }  # fmt: skip
    [parcel] = parcels(db_session)
    identity = (parcel.state, parcel.county, parcel.parcel_key)
    assert identity == ("FL", "dixie", "1324N4W0000003220300")
    assert parcel.parcel_id == "1-32-4N-4W-0000-00322-0300"
    assert parcel.owner_name == "SMITH JOHN"
    assert parcel.total_due == Decimal("1234.56")
    assert parcel.tax_year == 2025
    assert parcel.data["total_due"] == "$1,234.56"
    assert snapshot_count(db_session) == 1


def test_redelivering_the_same_chunk_changes_nothing(db_session: Session) -> None:
    chunk = [result_item(), result_item("1-32-4N-4W-0000-00322-0400")]
    ingest_result_items(db_session, chunk)
    db_session.commit()
    before = [(p.id, p.updated_at, p.data_hash) for p in parcels(db_session)]

    again = ingest_result_items(db_session, chunk)
    db_session.commit()

    assert (again.inserted, again.updated, again.unchanged, again.stale) == (0, 0, 2, 0)
    assert [(p.id, p.updated_at, p.data_hash) for p in parcels(db_session)] == before
    assert snapshot_count(db_session) == 2


def test_a_newer_scrape_with_new_data_updates_the_parcel(db_session: Session) -> None:
    ingest_result_items(db_session, [result_item()])
    newer = result_item(
        scraped_at=(T0 + timedelta(days=1)).isoformat(),
        data={"owner": "DOE JANE", "total_due": "$0.00"},
    )

    outcome = ingest_result_items(db_session, [newer])
    db_session.commit()

    assert (outcome.inserted, outcome.updated) == (0, 1)
    [parcel] = parcels(db_session)
    assert parcel.owner_name == "DOE JANE"
    assert parcel.total_due == Decimal("0.00")
    assert parcel.tax_year is None  # gone from the newer scrape
    assert snapshot_count(db_session) == 2


def test_an_older_scrape_never_overwrites_a_newer_one(db_session: Session) -> None:
    newer = result_item(scraped_at=(T0 + timedelta(days=1)).isoformat(), data={"owner": "NEW"})
    ingest_result_items(db_session, [newer])
    db_session.commit()

    older = result_item(data={"owner": "OLD"})
    outcome = ingest_result_items(db_session, [older])
    db_session.commit()

    assert (outcome.updated, outcome.stale) == (0, 1)
    [parcel] = parcels(db_session)
    assert parcel.owner_name == "NEW"
    assert snapshot_count(db_session) == 2  # the older scrape is still history


def test_a_newer_scrape_with_equal_data_does_not_rewrite_the_data(db_session: Session) -> None:
    """Only scraped_at advances (it records the newest scrape, so older ones stay stale)."""
    ingest_result_items(db_session, [result_item()])
    db_session.commit()
    [parcel] = parcels(db_session)
    before = (parcel.updated_at, parcel.data_hash, parcel.data, parcel.total_due)

    at_t1 = T0 + timedelta(hours=1)
    outcome = ingest_result_items(db_session, [result_item(scraped_at=at_t1.isoformat())])
    db_session.commit()

    assert (outcome.updated, outcome.unchanged) == (0, 1)
    [parcel] = parcels(db_session)
    assert (parcel.updated_at, parcel.data_hash, parcel.data, parcel.total_due) == before
    assert parcel.scraped_at == at_t1


def test_a_newer_scrape_with_equal_data_is_a_heap_only_update(db_session: Session) -> None:
    """No index covers what changes (scraped_at), so no index entry is written."""
    ingest_result_items(db_session, [result_item()])
    db_session.commit()

    # The backend's counters not yet flushed, earlier transactions' included: compare within
    # one transaction.
    updates = text(
        "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_xact_user_tables WHERE relname = 'parcels'"
    )
    before = db_session.execute(updates).one()
    later = result_item(scraped_at=(T0 + timedelta(hours=1)).isoformat())
    ingest_result_items(db_session, [later])
    after = db_session.execute(updates).one()
    db_session.commit()

    assert (after[0] - before[0], after[1] - before[1]) == (1, 1)


def test_a_late_scrape_older_than_an_unchanged_newer_one_does_not_win(
    db_session: Session,
) -> None:
    """A at t0, A again at t2 (unchanged, so the row is not rewritten), then B from t1 arrives
    late: the parcel must keep A, the newest data seen, and history keeps all three."""
    ingest_result_items(db_session, [result_item(data={"owner": "A"})])
    db_session.commit()
    at_t2 = (T0 + timedelta(hours=2)).isoformat()
    ingest_result_items(db_session, [result_item(scraped_at=at_t2, data={"owner": "A"})])
    db_session.commit()

    at_t1 = (T0 + timedelta(hours=1)).isoformat()
    late = ingest_result_items(db_session, [result_item(scraped_at=at_t1, data={"owner": "B"})])
    db_session.commit()

    assert (late.updated, late.stale) == (0, 1)
    [parcel] = parcels(db_session)
    assert parcel.owner_name == "A"
    assert snapshot_count(db_session) == 3


def test_two_scrapes_of_one_parcel_in_one_chunk_keep_the_newest(db_session: Session) -> None:
    newest = result_item(scraped_at=(T0 + timedelta(hours=2)).isoformat(), data={"owner": "B"})
    chunk = [newest, result_item(data={"owner": "A"}), newest]

    outcome = ingest_result_items(db_session, chunk)
    db_session.commit()

    assert outcome.counts() == {
        "inserted": 1, "updated": 0, "unchanged": 1, "stale": 1, "rejected": 0,
    }  # fmt: skip
    [parcel] = parcels(db_session)
    assert parcel.owner_name == "B"
    assert snapshot_count(db_session) == 2


def test_dashed_and_compact_ids_and_county_spellings_are_one_parcel(db_session: Session) -> None:
    first = result_item("1-32-4N-4W-0000-00322-0300", county="St. Johns")
    second = result_item(
        "1324N4W0000003220300",
        county="st_johns",
        scraped_at=(T0 + timedelta(hours=1)).isoformat(),
        data={"owner": "OTHER"},
    )

    ingest_result_items(db_session, [first])
    outcome = ingest_result_items(db_session, [second])
    db_session.commit()

    assert outcome.updated == 1
    [parcel] = parcels(db_session)
    assert (parcel.county, parcel.parcel_id) == ("stjohns", "1324N4W0000003220300")


def test_real_dixie_ids_in_two_spellings_land_on_the_same_parcels(db_session: Session) -> None:
    ids = DIXIE_PARCEL_IDS.read_text().split()[:300]
    dashed = ["-".join([pid[:2], pid[2:6], pid[6:]]) for pid in ids]

    ingest_result_items(db_session, [result_item(pid, county="DIXIE") for pid in ids])
    later = (T0 + timedelta(days=1)).isoformat()
    outcome = ingest_result_items(
        db_session,
        [result_item(pid, county="Dixie County", scraped_at=later, data={}) for pid in dashed],
    )
    db_session.commit()

    assert (outcome.inserted, outcome.updated) == (0, len(ids))
    assert len(parcels(db_session)) == len(ids)


def test_invalid_items_are_rejected_one_by_one_and_the_rest_ingested(db_session: Session) -> None:
    chunk = [result_item(), result_item(task_id="not-a-uuid"), {"parcel_id": "x"}]

    outcome = ingest_result_items(db_session, chunk)

    assert (outcome.inserted, outcome.rejected) == (1, 2)
    assert [error.index for error in outcome.errors] == [1, 2]
    assert "task_id" in outcome.errors[0].reason


def test_the_tasks_of_ingested_items_become_succeeded(db_session: Session) -> None:
    task = ScrapeTask(
        platform="qpublic", state="FL", county="dixie", parcel_id="1-32-4N-4W-0000-00322-0300",
        parcel_key="1324N4W0000003220300", status=TaskStatus.LEASED.value,
    )  # fmt: skip
    db_session.add(task)
    db_session.commit()

    ingest_result_items(db_session, [result_item(task_id=str(task.id)), result_item("9-9")])
    db_session.commit()
    db_session.refresh(task)

    assert task.status == TaskStatus.SUCCEEDED.value
    assert task.finished_at is not None


def test_unparseable_values_stay_in_data_and_are_counted(db_session: Session) -> None:
    data = {"total_due": "call office", "sale_date": "13/45/2024", "owner": "X", "zip": "abc"}

    outcome = ingest_result_items(db_session, [result_item(data=data)])
    db_session.commit()

    assert outcome.inserted == 1
    assert outcome.unparsed == {"total_due": 1, "last_sale_date": 1, "zip": 1}
    [parcel] = parcels(db_session)
    assert parcel.total_due is None and parcel.last_sale_date is None
    assert parcel.data == data


def test_text_with_tabs_newlines_and_backslashes_survives_the_copy(db_session: Session) -> None:
    data = {"owner": "A\tB\\C", "note": "line1\nline2\r", "situs": 'O"Brien \\N'}

    ingest_result_items(db_session, [result_item(data=data)])
    db_session.commit()

    [parcel] = parcels(db_session)
    assert parcel.data == data
    assert parcel.owner_name == "A B\\C"  # whitespace collapsed in the typed column
    assert parcel.situs_address == 'O"Brien \\N'
