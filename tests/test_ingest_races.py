"""Concurrent ingest of the same new parcels, what each database error means for an ingest,
and the metrics Redis clients' timeouts."""

from __future__ import annotations

import threading
import uuid

import psycopg2
import pytest
from sqlalchemy import exc as sa_exc
from sqlalchemy import text
from sqlalchemy.orm import Session

from db.session import session_scope
from gateway_localstack.servers import find_free_port
from services.ingest import ingest_result_items
from services.ingest.database_faults import DatabaseFault, classify_database_error
from tests.test_ingest_batch import parcels, result_item, snapshot_count

THREADS = 6
ROUNDS = 150


def test_the_parcel_identity_is_unique_through_one_index_only(db_session: Session) -> None:
    """ON CONFLICT ON CONSTRAINT uq_parcels_identity arbitrates that index alone: a second
    unique index on the identity turns a race on a first insert into an error."""
    unique_indexes = db_session.execute(
        text(
            "SELECT indexrelid::regclass::text FROM pg_index"
            " WHERE indrelid = 'parcels'::regclass AND indisunique AND NOT indisprimary"
        )
    ).scalars()
    assert sorted(unique_indexes) == ["uq_parcels_identity"]


def test_threads_inserting_the_same_new_parcels_at_once_all_succeed(db_session: Session) -> None:
    barrier = threading.Barrier(THREADS)
    failures: list[BaseException] = []

    def ingest_rounds() -> None:
        for number in range(ROUNDS):
            item = result_item(f"R-{number:04d}", task_id=str(uuid.uuid4()))
            barrier.wait(timeout=30)
            try:
                with session_scope() as session:
                    ingest_result_items(session, [item])
            except sa_exc.DBAPIError as exc:  # reported by the assertion below
                failures.append(exc)

    threads = [threading.Thread(target=ingest_rounds) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert [type(f).__name__ for f in failures] == []
    assert len(parcels(db_session)) == ROUNDS
    assert snapshot_count(db_session) == ROUNDS  # one scrape per parcel, however many sent


def _raised(db_session: Session, sqlstate: str) -> sa_exc.DBAPIError:
    statement = f"DO $$ BEGIN RAISE EXCEPTION 'race' USING ERRCODE = '{sqlstate}'; END $$"
    with pytest.raises(sa_exc.DBAPIError) as raised:
        db_session.execute(text(statement))
    db_session.rollback()
    return raised.value


@pytest.mark.parametrize("sqlstate", ["40P01", "40001", "23505", "55P03", "57014"])
def test_races_and_timeouts_are_transient(db_session: Session, sqlstate: str) -> None:
    """Deadlock, serialization, a unique violation (a first-insert race), lock and statement
    timeouts: another try may win, so they are retried, and counted."""
    assert classify_database_error(_raised(db_session, sqlstate)) is DatabaseFault.TRANSIENT


@pytest.mark.parametrize("sqlstate", ["57P01", "57P03", "08006", "53300"])
def test_a_server_going_away_is_an_outage(db_session: Session, sqlstate: str) -> None:
    assert classify_database_error(_raised(db_session, sqlstate)) is DatabaseFault.OUTAGE


@pytest.mark.parametrize("sqlstate", ["23502", "22009", "22003", "54000", "XX000"])
def test_other_errors_are_the_items_fault(db_session: Session, sqlstate: str) -> None:
    """Not null, a bad time zone offset, numeric overflow, a program limit (an index row too
    large: an OperationalError in psycopg2, yet no outage), an internal error."""
    assert classify_database_error(_raised(db_session, sqlstate)) is DatabaseFault.POISON


def test_a_bare_driver_error_is_classified_by_its_sqlstate_too(db_session: Session) -> None:
    bare = _raised(db_session, "23505").orig

    assert isinstance(bare, psycopg2.Error)
    assert classify_database_error(bare) is DatabaseFault.TRANSIENT


def test_a_refused_connection_is_an_outage() -> None:
    with pytest.raises(psycopg2.OperationalError) as refused:
        psycopg2.connect(host="127.0.0.1", port=find_free_port(), connect_timeout=2)

    assert classify_database_error(refused.value) is DatabaseFault.OUTAGE


def test_a_python_error_is_the_items_fault() -> None:
    assert classify_database_error(ValueError("bad")) is DatabaseFault.POISON


def test_the_ingest_metrics_redis_client_gives_up_after_two_seconds() -> None:
    from services.metrics_redis import metrics_redis

    options = metrics_redis().connection_pool.connection_kwargs
    assert (options["socket_connect_timeout"], options["socket_timeout"]) == (2.0, 2.0)
