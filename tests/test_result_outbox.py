"""Accepted means kept, even when the broker loses the message: the result outbox.

``POST /internal/results`` commits a row per ingest message before publishing it; the ingest
deletes the row in the transaction that writes (or rejects) the message's items; the
maintenance job sends again, same id and items, what is still there after the grace. Real
API, PostgreSQL, broker and ingest workers; the lost message is really taken off the queue.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.orm import Session

from services.queues import INGEST_QUEUE
from tests.celery_workers import WorkerProcess
from tests.test_ingest_pipeline import item, poison_trigger, rows
from tests.test_results_api import ingest_queue_length
from tests.waiting import wait_for

__all__ = ["poison_trigger"]  # a fixture, used by name
WorkerFactory = Callable[..., WorkerProcess]
ASYNC = {"Prefer": "respond-async"}


@pytest.fixture
def empty_ingest_queue() -> Iterator[None]:
    # A RabbitMQ broker is not flushed between tests.
    ingest_queue_length(purge=True)
    yield
    ingest_queue_length(purge=True)


def outbox(session: Session) -> list[Any]:
    return rows(session, "SELECT * FROM result_outbox ORDER BY created_at")


def parcel_ids(session: Session) -> list[str]:
    return [r.parcel_id for r in rows(session, "SELECT parcel_id FROM parcels ORDER BY 1")]


def post_async(api_client: TestClient, headers: dict[str, str], body: list[Any]) -> Any:
    return api_client.post("/internal/results", json=body, headers={**headers, **ASYNC})


@pytest.mark.broker
@pytest.mark.usefixtures("empty_ingest_queue")
def test_an_accepted_result_keeps_its_outbox_row_until_the_ingest_has_written_it(
    api_client: TestClient,
    worker_headers: dict[str, str],
    db_session: Session,
    celery_worker_factory: WorkerFactory,
) -> None:
    body = [item(f"OB-{n}") for n in range(3)]

    answer = post_async(api_client, worker_headers, body)

    assert answer.status_code == 202 and answer.json()["accepted"] == 3
    [row] = outbox(db_session)
    kept = json.loads(row.payload)
    assert [i["parcel_id"] for i in kept] == ["OB-0", "OB-1", "OB-2"]
    assert row.request_id == answer.headers["X-Request-ID"] and row.republish_count == 0
    assert ingest_queue_length() == 1
    assert "gateway_result_outbox_messages 1.0" in api_client.get("/metrics").text

    celery_worker_factory([INGEST_QUEUE])

    wait_for(lambda: not outbox(db_session), timeout_s=30, what="the outbox row deleted")
    assert parcel_ids(db_session) == ["OB-0", "OB-1", "OB-2"]  # in the same transaction
    metrics = api_client.get("/metrics").text
    assert "gateway_result_outbox_messages 0.0" in metrics
    assert "gateway_result_outbox_oldest_age_seconds 0.0" in metrics


@pytest.mark.broker
@pytest.mark.usefixtures("empty_ingest_queue")
def test_a_message_the_broker_lost_is_sent_again_after_the_grace_and_written(
    api_client: TestClient,
    worker_headers: dict[str, str],
    db_session: Session,
    celery_worker_factory: WorkerFactory,
) -> None:
    from celery.result import AsyncResult

    from tasks.app import app
    from tasks.maintenance import republish_result_outbox

    answer = post_async(api_client, worker_headers, [item("LOST-1"), item("LOST-2")])
    assert answer.status_code == 202
    [accepted] = outbox(db_session)
    ingest_queue_length(purge=True)  # the message is gone, as a Redis killed mid-BRPOP loses it
    celery_worker_factory([INGEST_QUEUE])

    assert republish_result_outbox() == 0  # within the grace: maybe only slow
    assert republish_result_outbox(grace_s=0) == 1

    wait_for(lambda: not outbox(db_session), timeout_s=30, what="the re-sent message written")
    assert parcel_ids(db_session) == ["LOST-1", "LOST-2"]
    # Sent again under its own id: the ingest's outcome is stored under the accepted id.
    assert AsyncResult(accepted.message_id, app=app).get(timeout=10)["inserted"] == 2
    assert republish_result_outbox(grace_s=0) == 0


@pytest.mark.broker
@pytest.mark.usefixtures("empty_ingest_queue")
def test_nothing_is_sent_again_while_messages_wait_in_the_ingest_queue(
    api_client: TestClient, worker_headers: dict[str, str], db_session: Session
) -> None:
    from tasks.maintenance import republish_result_outbox

    assert post_async(api_client, worker_headers, [item("SLOW-1")]).status_code == 202
    assert ingest_queue_length() == 1  # no ingest worker: a backlog, not a loss

    assert republish_result_outbox(grace_s=0) == 0
    assert ingest_queue_length() == 1
    [row] = outbox(db_session)
    assert row.republish_count == 0


@pytest.mark.broker
@pytest.mark.usefixtures("empty_ingest_queue")
def test_with_the_database_unreachable_results_are_still_accepted_and_written_when_it_is_back(
    api_client: TestClient,
    worker_headers: dict[str, str],
    db_session: Session,
    celery_worker_factory: WorkerFactory,
) -> None:
    from db.session import configure_engine
    from gateway_localstack.servers import find_free_port

    # The worker's identity is claimed (in the database) by a first request.
    assert post_async(api_client, worker_headers, []).status_code == 202
    configure_engine("tests", f"postgresql://nobody@127.0.0.1:{find_free_port()}/gone")
    try:
        accepted = post_async(api_client, worker_headers, [item("DOWN-1")])
    finally:
        configure_engine("tests")

    # Accepted on the broker's word alone, as before the outbox: no row could be written.
    assert accepted.status_code == 202 and accepted.json()["accepted"] == 1, accepted.text
    assert ingest_queue_length() == 1
    assert outbox(db_session) == []
    celery_worker_factory([INGEST_QUEUE])
    wait_for(lambda: parcel_ids(db_session) == ["DOWN-1"], timeout_s=30, what="DOWN-1 written")


@pytest.mark.broker
@pytest.mark.usefixtures("empty_ingest_queue", "poison_trigger")
def test_a_message_whose_poison_item_is_rejected_loses_its_outbox_row(
    api_client: TestClient,
    worker_headers: dict[str, str],
    db_session: Session,
    celery_worker_factory: WorkerFactory,
) -> None:
    body = [item("GOOD-1"), item("POISON-1"), item("GOOD-2")]
    assert post_async(api_client, worker_headers, body).status_code == 202
    [accepted] = outbox(db_session)

    celery_worker_factory([INGEST_QUEUE])

    wait_for(lambda: not outbox(db_session), timeout_s=30, what="the outbox row deleted")
    [reject] = rows(db_session, "SELECT reason_code, message_id FROM ingest_rejects")
    assert (reject.reason_code, reject.message_id) == ("poison", accepted.message_id)
    assert parcel_ids(db_session) == ["GOOD-1", "GOOD-2"]


@pytest.mark.broker
@pytest.mark.usefixtures("empty_ingest_queue")
def test_re_ingested_rejects_are_kept_in_the_outbox_until_written(
    api_client: TestClient, admin_headers: dict[str, str], db_session: Session
) -> None:
    from db.models import RejectReason
    from services.ingest.rejects import RejectedItem, record_rejects

    record_rejects(db_session, [RejectedItem(item("RE-1"), RejectReason.RETRY_EXHAUSTED, "x")])
    db_session.commit()

    again = api_client.post("/admin/ingest-rejects/reingest", json={}, headers=admin_headers)

    assert again.json() == {"reingested": 1}
    [row] = outbox(db_session)
    assert [i["parcel_id"] for i in json.loads(row.payload)] == ["RE-1"]
    assert rows(db_session, "SELECT id FROM ingest_rejects") == []


# --- the ingest side, without a worker: which transactions delete the rows ------------------


def accept(session: Session, items: list[Any]) -> str:
    """A message as the results route records it (no publish)."""
    from services.ingest.outbox import record_outbox
    from services.ingest.result_messages import ResultChunk

    message_id = str(uuid.uuid4())
    record_outbox(session, [ResultChunk(message_id, items)], request_id="req-1")
    session.commit()
    return message_id


def test_a_rolled_back_write_keeps_the_row_and_a_committed_one_deletes_it(
    db_session: Session,
) -> None:
    from services.ingest.pipeline import IngestMessage, prepare_batch, write_batch

    message_id = accept(db_session, [item("RB-1")])
    batch = prepare_batch([IngestMessage(message_id, [item("RB-1")])])

    write_batch(db_session, batch)
    db_session.rollback()
    assert [r.message_id for r in outbox(db_session)] == [message_id]

    write_batch(db_session, batch)
    db_session.commit()
    assert outbox(db_session) == [] and parcel_ids(db_session) == ["RB-1"]


def test_a_batch_given_up_as_rejects_deletes_its_rows(db_session: Session) -> None:
    from services.ingest.pipeline import IngestMessage, prepare_batch, reject_whole_batch

    first = accept(db_session, [item("GU-1")])
    second = accept(db_session, [{"parcel_id": "not valid"}])
    messages = [IngestMessage(first, [item("GU-1")]), IngestMessage(second, [{"parcel_id": "?"}])]

    reject_whole_batch(db_session, prepare_batch(messages), "gave up after 5 attempts")
    db_session.commit()

    assert outbox(db_session) == []
    codes = rows(db_session, "SELECT reason_code FROM ingest_rejects ORDER BY 1")
    assert [r.reason_code for r in codes] == ["invalid", "retry_exhausted"]


def test_a_message_written_twice_changes_nothing_the_second_time(db_session: Session) -> None:
    """A slow message re-published after the grace is ingested twice."""
    from services.ingest.pipeline import IngestMessage, prepare_batch, write_batch

    task_id = uuid.uuid4()
    db_session.execute(
        text(
            "INSERT INTO scrape_tasks (id, platform, state, county, parcel_id, parcel_key,"
            " status) VALUES (:id, 'qpublic', 'FL', 'dixie', 'TW-1', 'TW1', 'running')"
        ),
        {"id": task_id},
    )
    message_id = accept(db_session, [item("TW-1", task_id=str(task_id))])
    batch = prepare_batch([IngestMessage(message_id, [item("TW-1", task_id=str(task_id))])])

    first = write_batch(db_session, batch)
    db_session.commit()
    second = write_batch(db_session, batch)
    db_session.commit()

    assert first.messages[message_id].counts["inserted"] == 1
    assert second.messages[message_id].counts["unchanged"] == 1
    assert [r.n for r in rows(db_session, "SELECT count(*) AS n FROM parcel_snapshots")] == [1]
    [task] = rows(db_session, "SELECT status FROM scrape_tasks")
    assert task.status == "succeeded" and outbox(db_session) == []


def test_a_row_is_sent_again_at_most_once_per_grace_and_the_wait_doubles(
    db_session: Session,
) -> None:
    from services.ingest.outbox import claim_due_outbox_messages

    message_id = accept(db_session, [item("BO-1")])
    [row] = outbox(db_session)
    start = row.created_at

    def claim(after_s: float) -> list[str]:
        now = start + timedelta(seconds=after_s)
        due = claim_due_outbox_messages(db_session, grace_s=300, now=now, limit=10)
        db_session.commit()
        return [message.chunk.message_id for message in due]

    assert claim(299) == []
    assert claim(301) == [message_id]  # re-published at 301: next due 600 s later
    assert claim(900) == []
    assert claim(902) == [message_id]  # then 1200 s later
    assert claim(2101) == []
    assert claim(2103) == [message_id]
    [row] = outbox(db_session)
    assert row.republish_count == 3
    assert row.republished_at == start + timedelta(seconds=2103)
    assert row.created_at < datetime.now(UTC)
