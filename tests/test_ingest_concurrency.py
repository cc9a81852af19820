"""The batch ingest under concurrent chunks, and what a redelivery leaves untouched."""

from __future__ import annotations

import threading
from datetime import timedelta

from sqlalchemy import text
from sqlalchemy.orm import Session

from db.session import new_session, session_scope
from services.ingest import IngestOutcome, ingest_result_items
from tests.test_ingest_batch import T0, parcels, result_item, snapshot_count
from tests.waiting import wait_for


def _is_waiting_for_a_lock(session: Session) -> bool:
    session.rollback()  # a fresh snapshot of pg_stat_activity on each poll
    waiting = session.execute(
        text(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
    ).scalar_one()
    return bool(waiting)


def test_a_scrape_racing_the_first_insert_of_its_parcel_still_becomes_history(
    db_session: Session,
) -> None:
    newer = result_item(scraped_at=(T0 + timedelta(hours=1)).isoformat(), data={"owner": "NEW"})
    older = result_item(data={"owner": "OLD"})
    first = new_session()
    ingest_result_items(first, [newer])  # not committed yet: the parcel is not visible
    outcomes: list[IngestOutcome] = []

    def ingest_older() -> None:
        with session_scope() as second:
            outcomes.append(ingest_result_items(second, [older]))

    racer = threading.Thread(target=ingest_older)
    racer.start()
    try:
        wait_for(lambda: _is_waiting_for_a_lock(db_session), timeout_s=20, what="a lock wait")
    finally:
        first.commit()
        first.close()
        racer.join(timeout=30)

    assert [(o.inserted, o.updated, o.stale) for o in outcomes] == [(0, 0, 1)]
    [parcel] = parcels(db_session)
    assert parcel.owner_name == "NEW"
    assert snapshot_count(db_session) == 2  # the older scrape found its parcel afterwards


def test_a_redelivered_chunk_does_not_even_lock_its_parcels(db_session: Session) -> None:
    chunk = [result_item(), result_item("1-32-4N-4W-0000-00322-0400")]
    ingest_result_items(db_session, chunk)
    db_session.commit()
    tuple_versions = text("SELECT xmin::text, xmax::text FROM parcels ORDER BY id")
    before = db_session.execute(tuple_versions).all()

    again = ingest_result_items(db_session, chunk)
    db_session.commit()

    assert (again.inserted, again.updated, again.unchanged, again.stale) == (0, 0, 2, 0)
    assert db_session.execute(tuple_versions).all() == before
    assert snapshot_count(db_session) == 2


def test_an_older_scrape_waiting_on_an_unchanged_newer_one_does_not_win(
    db_session: Session,
) -> None:
    """A at t0 committed; X ingests A again at t2 (unchanged) and has not committed; Y ingests
    B from t1, whose snapshot still sees t0. Once X commits, Y must find its scrape stale."""
    ingest_result_items(db_session, [result_item(data={"owner": "A"})])
    db_session.commit()
    at_t1, at_t2 = ((T0 + timedelta(hours=h)).isoformat() for h in (1, 2))
    x = new_session()
    ingest_result_items(x, [result_item(scraped_at=at_t2, data={"owner": "A"})])
    outcomes: list[IngestOutcome] = []

    def ingest_b() -> None:
        with session_scope() as y:
            outcomes.append(ingest_result_items(y, [result_item(scraped_at=at_t1, data=B)]))

    racer = threading.Thread(target=ingest_b)
    racer.start()
    try:
        wait_for(lambda: _is_waiting_for_a_lock(db_session), timeout_s=20, what="a lock wait")
    finally:
        x.commit()
        x.close()
        racer.join(timeout=30)

    assert [(o.updated, o.unchanged, o.stale) for o in outcomes] == [(0, 0, 1)]
    [parcel] = parcels(db_session)
    assert (parcel.owner_name, parcel.scraped_at.isoformat()) == ("A", at_t2)
    assert snapshot_count(db_session) == 3  # every scrape is history


B = {"owner": "B"}
