"""Concurrent ingest of the same new parcels, which database errors the task retries, and the
metrics Redis clients' timeouts."""

from __future__ import annotations

import threading
import uuid

import psycopg2
import pytest
from sqlalchemy import exc as sa_exc
from sqlalchemy import text
from sqlalchemy.orm import Session

from db.session import session_scope
from services.ingest import ingest_result_items
from tasks.ingest import MAX_UNIQUE_VIOLATION_RETRIES, is_worth_retrying
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


@pytest.mark.parametrize("sqlstate", ["40P01", "40001"])
def test_a_deadlock_or_serialization_failure_is_retried(db_session: Session, sqlstate: str) -> None:
    assert is_worth_retrying(_raised(db_session, sqlstate), retries=100)


def test_a_unique_violation_is_retried_a_few_times_then_fails(db_session: Session) -> None:
    violation = _raised(db_session, "23505")

    assert isinstance(violation, sa_exc.IntegrityError)
    assert is_worth_retrying(violation, retries=0)
    assert not is_worth_retrying(violation, retries=MAX_UNIQUE_VIOLATION_RETRIES)


def test_a_bare_driver_error_is_classified_by_its_sqlstate_too(db_session: Session) -> None:
    bare = _raised(db_session, "23505").orig

    assert isinstance(bare, psycopg2.Error)
    assert is_worth_retrying(bare, retries=0)


def test_other_integrity_errors_are_not_retried(db_session: Session) -> None:
    assert not is_worth_retrying(_raised(db_session, "23502"), retries=0)  # not null


def test_the_ingest_metrics_redis_clients_give_up_after_two_seconds() -> None:
    from gateway_api.routes import results
    from tasks import ingest

    for client in (results.metrics_redis(), ingest.metrics_redis()):
        options = client.connection_pool.connection_kwargs
        assert (options["socket_connect_timeout"], options["socket_timeout"]) == (2.0, 2.0)
