"""Accepted means kept: every accepted result item ends as a parcel row or an ingest reject.

Real API, real ingest workers (prefork, the batching strategy), real PostgreSQL. The four
ways an accepted result used to be lost are each accepted or refused honestly; a chunk with a
poison item writes the others; a chunk that cannot get its lock gives up after its retries
into ``ingest_rejects`` and comes back from the CLI once the fault is gone.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.orm import Session

from services.queues import INGEST_QUEUE
from tests.celery_workers import WorkerProcess
from tests.dispatch_helpers import (  # clean_dispatch_queues: autouse fixture
    assert_ledger_balanced,
    assert_succeeded_tasks_kept_their_results,
    clean_dispatch_queues,
    enqueue,
    task_row,
)
from tests.waiting import wait_for

# A RabbitMQ broker is not flushed between tests: a message a stopped worker handed back must
# not reach the next test's worker.
pytestmark = [pytest.mark.broker, pytest.mark.usefixtures(clean_dispatch_queues.__name__)]
WorkerFactory = Callable[..., WorkerProcess]
SCRAPED_AT = datetime(2026, 11, 1, 12, tzinfo=UTC).isoformat()


def item(parcel_id: str, **fields: Any) -> dict[str, Any]:
    data = fields.pop("data", {"owner": "SMITH JOHN", "total_due": "$1,204.10"})
    return {
        "task_id": None, "parcel_id": parcel_id, "platform": "qpublic", "state": "FL",
        "county": "Dixie", "data": data, "scraped_at": SCRAPED_AT, "parse_duration_ms": 5,
        **fields,
    }  # fmt: skip


def post_results(
    api_client: TestClient, headers: dict[str, str], body: list[Any] | bytes, *, wait: float = 30
) -> dict[str, Any]:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    response = api_client.post(
        f"/internal/results?wait={wait}",
        content=content,
        headers={**headers, "content-type": "application/json", "Prefer": "respond-async"},
    )
    assert response.status_code == 202, response.text
    answer: dict[str, Any] = response.json()
    return answer


def rows(session: Session, sql: str, **params: Any) -> list[Any]:
    session.rollback()  # see the workers' commits
    return list(session.execute(text(sql), params).all())


@pytest.fixture(autouse=True)
def _succeeded_means_kept(db_session: Session) -> Iterator[None]:
    yield
    assert_succeeded_tasks_kept_their_results(db_session)


@pytest.fixture
def ingest_worker(celery_worker_factory: WorkerFactory) -> WorkerProcess:
    return celery_worker_factory([INGEST_QUEUE], concurrency=2)


@pytest.mark.usefixtures("ingest_worker")
def test_a_5000_digit_tax_year_is_accepted_and_kept_in_data_only(
    api_client: TestClient, worker_headers: dict[str, str], db_session: Session
) -> None:
    huge = item("TY-1", data={"owner": "A", "tax_year": "1" * 5000, "total_due": "$5.00"})

    answer = post_results(api_client, worker_headers, [item("TY-0"), huge, item("TY-2")])

    assert (answer["accepted"], answer["inserted"], answer["pending"]) == (3, 3, 0)
    [parcel] = rows(
        db_session, "SELECT tax_year, total_due, data->>'tax_year' AS raw FROM parcels"
        " WHERE parcel_key = 'TY1'",
    )  # fmt: skip
    assert parcel.tax_year is None and parcel.raw == "1" * 5000 and str(parcel.total_due) == "5.00"


def test_a_lone_surrogate_in_a_parcel_id_is_refused_at_the_edge_naming_the_field(
    api_client: TestClient, worker_headers: dict[str, str]
) -> None:
    good = json.dumps(item("LS-1"))
    bad = json.dumps(item("LS-2")).replace('"LS-2"', '"LS-\\ud800"')

    answer = post_results(api_client, worker_headers, f"[{good}, {bad}]".encode(), wait=0)

    assert (answer["accepted"], answer["failed"]) == (1, 1)
    [error] = answer["errors"]
    assert error["index"] == 1 and "parcel_id" in error["reason"]
    assert "surrogate" in error["reason"]


@pytest.mark.usefixtures("ingest_worker")
def test_a_time_zone_offset_postgresql_refuses_is_stored_in_utc(
    api_client: TestClient, worker_headers: dict[str, str], db_session: Session
) -> None:
    odd = item("TZ-1", scraped_at="2026-11-01T00:00:00+20:00")

    answer = post_results(api_client, worker_headers, [item("TZ-0"), odd, item("TZ-2")])

    assert (answer["accepted"], answer["inserted"]) == (3, 3)
    [stamp] = rows(db_session, "SELECT scraped_at FROM parcels WHERE parcel_key = 'TZ1'")
    assert stamp.scraped_at == datetime(2026, 10, 31, 4, tzinfo=UTC)


@pytest.mark.usefixtures("ingest_worker")
def test_a_megabyte_owner_name_is_accepted_and_kept_in_data_only(
    api_client: TestClient, worker_headers: dict[str, str], db_session: Session
) -> None:
    long_name = item("LN-1", data={"owner": "X" * 1_000_000, "total_due": "$1.00"})

    answer = post_results(api_client, worker_headers, [long_name, item("LN-2")])

    assert (answer["accepted"], answer["inserted"]) == (2, 2)
    [parcel] = rows(
        db_session, "SELECT owner_name, length(data->>'owner') AS kept FROM parcels"
        " WHERE parcel_key = 'LN1'",
    )  # fmt: skip
    assert parcel.owner_name is None and parcel.kept == 1_000_000


@pytest.fixture
def poison_trigger(db_session: Session) -> Iterator[None]:
    """A real database error for one parcel key, as a broken constraint or index would raise."""
    db_session.execute(
        text("""
        CREATE FUNCTION test_refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          IF NEW.parcel_key LIKE 'POISON%' THEN
            RAISE EXCEPTION 'refused by test' USING ERRCODE = '23514';
          END IF;
          RETURN NEW;
        END $$;
        CREATE TRIGGER test_refuse_poison BEFORE INSERT ON parcels
          FOR EACH ROW EXECUTE FUNCTION test_refuse_poison();
        """)
    )
    db_session.commit()
    yield
    db_session.execute(
        text("DROP TRIGGER test_refuse_poison ON parcels; DROP FUNCTION test_refuse_poison()")
    )
    db_session.commit()


@pytest.mark.usefixtures("ingest_worker", "poison_trigger")
def test_a_poison_item_is_isolated_and_every_other_item_of_its_chunk_is_written(
    api_client: TestClient,
    admin_headers: dict[str, str],
    worker_headers: dict[str, str],
    db_session: Session,
) -> None:
    [task_id] = enqueue(api_client, admin_headers, ["POISON-7"], platform="qpublic")
    body = [item(f"OK-{n}") for n in range(40)]
    body.insert(17, item("POISON-7", task_id=str(task_id)))

    answer = post_results(api_client, worker_headers, body)

    assert (answer["accepted"], answer["inserted"], answer["ingest_failed"]) == (41, 40, 1)
    [error] = answer["errors"]
    assert error["index"] == 17 and "23514" in error["reason"]
    assert len(rows(db_session, "SELECT id FROM parcels")) == 40
    [reject] = rows(db_session, "SELECT reason_code, task_id, payload FROM ingest_rejects")
    assert reject.reason_code == "poison" and reject.task_id == task_id
    assert json.loads(reject.payload)["parcel_id"] == "POISON-7"
    # Quarantined is finished: the ledger holds the task succeeded, and its reject row exists.
    assert task_row(db_session, task_id)["status"] == "succeeded"
    assert_ledger_balanced(db_session, enqueued=1)


def test_a_chunk_that_outlasts_its_retries_is_kept_and_re_ingests_from_the_cli(
    api_client: TestClient,
    worker_headers: dict[str, str],
    db_session: Session,
    celery_worker_factory: WorkerFactory,
) -> None:
    from cli.main import main
    from db.session import get_engine

    fast_giving_up = {
        "GATEWAY_INGEST_LOCK_TIMEOUT_S": "0.2",
        "GATEWAY_INGEST_MAX_ATTEMPTS": "2",
        "GATEWAY_INGEST_RETRY_BASE_S": "0.05",
    }
    celery_worker_factory([INGEST_QUEUE], extra_env=fast_giving_up)
    body = [item(f"LOCK-{n}") for n in range(3)]
    with get_engine().connect() as blocker:
        blocker.execute(text("LOCK TABLE parcels IN ACCESS EXCLUSIVE MODE"))
        answer = post_results(api_client, worker_headers, body)
        blocker.rollback()

    assert (answer["accepted"], answer["ingest_failed"]) == (3, 3)
    rejects = rows(db_session, "SELECT reason_code, reason FROM ingest_rejects")
    assert [r.reason_code for r in rejects] == ["retry_exhausted"] * 3
    assert "55P03" in rejects[0].reason  # lock_not_available: the lock timeout
    assert rows(db_session, "SELECT id FROM parcels") == []

    result = CliRunner().invoke(main, ["ingest-rejects", "reingest", "--reason", "retry_exhausted"])

    assert result.exit_code == 0, result.output
    assert "re-ingesting 3 items" in result.output
    wait_for(
        lambda: len(rows(db_session, "SELECT id FROM parcels")) == 3,
        timeout_s=30,
        what="the re-ingested items",
    )
    parcels = rows(db_session, "SELECT parcel_id FROM parcels ORDER BY 1")
    assert [p.parcel_id for p in parcels] == ["LOCK-0", "LOCK-1", "LOCK-2"]
    assert rows(db_session, "SELECT id FROM ingest_rejects") == []


def test_items_sent_straight_to_the_queue_are_batched_into_few_chunks(
    db_session: Session, celery_worker_factory: WorkerFactory, api_client: TestClient
) -> None:
    from tasks.app import app

    for n in range(300):  # as 300 scrape tasks send them: one item per message
        app.send_task("ingest.parcel_results", args=[[item(f"B-{n}")]], ignore_result=True)
    celery_worker_factory([INGEST_QUEUE], concurrency=2)

    wait_for(
        lambda: len(rows(db_session, "SELECT id FROM parcels")) == 300,
        timeout_s=60,
        what="300 one-item messages ingested",
    )

    metrics = api_client.get("/metrics").text
    chunks = _metric(metrics, "gateway_ingest_chunks_total")
    assert _metric(metrics, "gateway_ingest_chunk_items_total") == 300
    # How many depends on how fast the worker takes messages in; one per message is the bug.
    assert chunks <= 60, f"{chunks} chunks for 300 messages: not batched"


def test_admin_api_lists_shows_reingests_and_purges_rejects(
    api_client: TestClient, admin_headers: dict[str, str], db_session: Session
) -> None:
    from db.models import RejectReason
    from services.ingest.rejects import RejectedItem, record_rejects

    bad = {"parcel_id": "NUL\x00", "note": "\ud800"}
    record_rejects(
        db_session,
        [
            RejectedItem(bad, RejectReason.INVALID, "parcel_id: contains a NUL character"),
            RejectedItem(item("RE-1"), RejectReason.RETRY_EXHAUSTED, "gave up"),
        ],
    )
    db_session.commit()

    listed = api_client.get("/admin/ingest-rejects", headers=admin_headers).json()
    assert listed["counts"] == {"invalid": 1, "poison": 0, "retry_exhausted": 1}
    newest, oldest = listed["items"]
    shown = api_client.get(f"/admin/ingest-rejects/{oldest['id']}", headers=admin_headers).json()
    assert json.loads(shown["payload"]) == bad  # exactly as sent, NUL and surrogate included
    assert shown["parcel_id"] is None  # not storable as text: only in the payload

    purge = api_client.post(
        "/admin/ingest-rejects/purge", json={"reason": "invalid"}, headers=admin_headers
    )
    again = api_client.post(
        "/admin/ingest-rejects/reingest", json={"ids": [newest["id"]]}, headers=admin_headers
    )

    assert purge.json() == {"purged": 1} and again.json() == {"reingested": 1}
    assert rows(db_session, "SELECT id FROM ingest_rejects") == []
    unbounded = api_client.post("/admin/ingest-rejects/purge", json={}, headers=admin_headers)
    assert unbounded.status_code == 422


def _metric(exposition: str, name: str) -> float:
    for line in exposition.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not exported")


def test_rejected_items_name_their_message_and_request(
    db_session: Session,
) -> None:
    from services.ingest.pipeline import IngestMessage, prepare_batch, write_batch

    message = IngestMessage(str(uuid.uuid4()), [item("RQ-1"), {"parcel_id": 5}], "req-42")
    result = write_batch(db_session, prepare_batch([message]))
    db_session.commit()

    assert result.messages[message.message_id].counts["inserted"] == 1
    [reject] = rows(db_session, "SELECT reason_code, message_id, request_id FROM ingest_rejects")
    assert tuple(reject) == ("invalid", message.message_id, "req-42")


def _held_by_a_lock(
    celery_worker_factory: WorkerFactory, extra_env: dict[str, str]
) -> tuple[WorkerProcess, Any]:
    """An ingest worker whose next chunk will wait on a lock the test holds on parcels."""
    from db.session import get_engine

    worker = celery_worker_factory([INGEST_QUEUE], extra_env=extra_env)
    blocker = get_engine().connect()
    blocker.execute(text("LOCK TABLE parcels IN ACCESS EXCLUSIVE MODE"))
    return worker, blocker


def _lock_waiters(session: Session) -> int:
    found = rows(
        session,
        "SELECT count(*) AS n FROM pg_locks l JOIN pg_class c ON c.oid = l.relation"
        " WHERE c.relname = 'parcels' AND NOT l.granted"
        " AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())",
    )
    return int(found[0].n)


def test_a_chunk_whose_child_is_killed_is_held_and_written_later(
    db_session: Session, celery_worker_factory: WorkerFactory
) -> None:
    from tasks.app import app

    worker, blocker = _held_by_a_lock(
        celery_worker_factory, {"GATEWAY_INGEST_LOCK_TIMEOUT_S": "600"}
    )
    try:
        for n in range(5):
            app.send_task("ingest.parcel_results", args=[[item(f"K-{n}")]], ignore_result=True)
        wait_for(lambda: _lock_waiters(db_session) >= 1, timeout_s=30, what="a chunk mid-write")
        worker.kill_children()  # as the OOM killer would, mid-chunk
    finally:
        blocker.rollback()
        blocker.close()

    wait_for(
        lambda: len(rows(db_session, "SELECT id FROM parcels")) == 5,
        timeout_s=60,
        what="the held messages written after the child died",
    )
    assert rows(db_session, "SELECT id FROM ingest_rejects") == []
    assert "lost its child" in worker.log()


def test_a_message_that_keeps_killing_its_child_is_recorded_not_retried_forever(
    db_session: Session, celery_worker_factory: WorkerFactory
) -> None:
    from tasks.app import app

    _, blocker = _held_by_a_lock(
        celery_worker_factory,
        {
            "GATEWAY_INGEST_LOCK_TIMEOUT_S": "600",
            "GATEWAY_TASK_TIME_LIMIT_S": "10",  # the chunk runs past it, waiting on the lock
            "GATEWAY_INGEST_MAX_CRASHES": "1",
        },
    )
    try:
        app.send_task("ingest.parcel_results", args=[[item("TL-1")]], ignore_result=True)
        [reject] = wait_for(
            lambda: rows(db_session, "SELECT reason_code, reason FROM ingest_rejects"),
            timeout_s=60,
            what="the message quarantined after its child was killed",
        )
    finally:
        blocker.rollback()
        blocker.close()

    assert reject.reason_code == "retry_exhausted" and "time limit" in reject.reason
