"""Enqueue: ledger row first, then the message; idempotent; per-item errors; nothing lost."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.orm import Session

from db.models import ScrapeTask
from services.dispatch.enqueue import EnqueueRequest, ItemStatus, enqueue_tasks
from services.dispatch.envelopes import SCRAPE_TASK_NAME, scrape_message
from tests.dispatch_helpers import (
    assert_ledger_balanced,
    assert_queue_depth,
    clean_dispatch_queues,
    enqueue,
    lease,
    platform_policy,
    task_row,
)
from tests.outages import TcpProxy

pytestmark = [pytest.mark.broker, pytest.mark.usefixtures(clean_dispatch_queues.__name__)]


def test_a_batch_reports_each_bad_item_and_enqueues_the_rest(
    api_client: TestClient, admin_headers: dict[str, str], db_session: Session
) -> None:
    items = [
        {"platform": "demo", "state": "FL", "county": "Dixie", "parcel_id": "01-08-13-0000"},
        {"platform": "nosuch", "state": "FL", "county": "dixie", "parcel_id": "A1"},
        {"platform": "demo", "state": "FL", "county": "dixie", "parcel_id": "A2", "priority": 9},
        {"platform": "demo", "state": "FL", "county": "dixie", "parcel_id": "  "},
        {"platform": "demo", "state": "FL", "county": "dixie"},
        {"platform": "demo", "state": "FL", "county": "dixie", "parcel_id": "B7", "priority": 1},
    ]

    response = api_client.post("/admin/tasks", json={"tasks": items}, headers=admin_headers)

    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["enqueued"], body["already_active"], body["invalid"]) == (2, 0, 4)
    statuses = [item["status"] for item in body["items"]]
    assert statuses == ["enqueued", "invalid", "invalid", "invalid", "invalid", "enqueued"]
    errors = [item["error"] for item in body["items"]]
    assert "unknown platform 'nosuch'" in errors[1]
    assert "priority" in errors[2]
    assert "empty" in errors[3]
    assert "parcel_id" in errors[4]
    first = task_row(db_session, body["items"][0]["task_id"])
    assert (first["county"], first["parcel_key"], first["status"]) == (
        "dixie",
        "0108130000",
        "queued",
    )
    assert first["published_at"] is not None
    assert_queue_depth(1, "demo", 3)
    assert_queue_depth(1, "demo", 1)
    assert_ledger_balanced(db_session, enqueued=2)


def test_enqueueing_an_active_parcel_again_changes_nothing(
    api_client: TestClient, admin_headers: dict[str, str], db_session: Session
) -> None:
    [task_id] = enqueue(api_client, admin_headers, ["1-32-4N-4W-0000-00322-0300"])
    again = {
        "platform": "demo",
        "state": "fl",
        "county": "DIXIE",
        "parcel_id": "1324N4W0000003220300",
    }

    response = api_client.post(
        "/admin/tasks", json={"tasks": [again, again]}, headers=admin_headers
    )

    body = response.json()
    assert (body["enqueued"], body["already_active"]) == (0, 2)
    assert {item["task_id"] for item in body["items"]} == {str(task_id)}
    assert_queue_depth(1, "demo")
    assert_ledger_balanced(db_session, enqueued=1)


def test_duplicates_inside_one_batch_are_enqueued_once(
    api_client: TestClient, admin_headers: dict[str, str], db_session: Session
) -> None:
    item = {"platform": "demo", "state": "FL", "county": "dixie", "parcel_id": "X-1"}

    body = api_client.post(
        "/admin/tasks", json={"tasks": [item, item]}, headers=admin_headers
    ).json()

    assert [i["status"] for i in body["items"]] == ["enqueued", "already_active"]
    assert body["items"][0]["task_id"] == body["items"][1]["task_id"]
    assert_ledger_balanced(db_session, enqueued=1)


def test_a_mixed_batch_writes_each_field_and_reports_each_item_by_index(
    db_session: Session,
) -> None:
    [active] = enqueue_tasks(db_session, [EnqueueRequest("demo", "FL", "dixie", "M-0")]).messages
    url = "https://example.org/parcel/M-1"
    requests = [
        EnqueueRequest("demo", "fl", "Dixie County", "m-1", url=f"  {url} ", priority=1),
        EnqueueRequest("demo", "FL", "dixie", "M 0"),  # the active M-0
        EnqueueRequest("demo", "FL", "dixie", "M-1"),  # the first item, again
        EnqueueRequest("nosuch", "FL", "dixie", "M-2"),
        EnqueueRequest("demo", "FL", "dixie", "M-3"),
    ]

    with platform_policy("demo", max_retries=7):
        report = enqueue_tasks(db_session, requests, request_id="req-42")
    db_session.commit()

    statuses = [outcome.status for outcome in report.outcomes]
    assert statuses == [
        ItemStatus.ENQUEUED,
        ItemStatus.ALREADY_ACTIVE,
        ItemStatus.ALREADY_ACTIVE,
        ItemStatus.INVALID,
        ItemStatus.ENQUEUED,
    ]
    first, again_active, again_first, invalid, last = (o.task_id for o in report.outcomes)
    assert (again_active, again_first, invalid) == (active.task_id, first, None)
    assert [message.task_id for message in report.messages] == [first, last]
    row = task_row(db_session, report.messages[0].task_id)
    assert {k: row[k] for k in ("state", "county", "parcel_id", "parcel_key", "url")} == {
        "state": "FL",
        "county": "dixie",
        "parcel_id": "m-1",
        "parcel_key": "M1",
        "url": url,
    }
    assert (row["priority"], row["max_retries"], row["request_id"]) == (1, 7, "req-42")
    assert (row["status"], row["attempt"], row["published_at"]) == ("queued", 0, None)
    for message in report.messages:  # the message is the one the stored row makes
        assert message == scrape_message(db_session.get_one(ScrapeTask, message.task_id))
    assert_ledger_balanced(db_session, enqueued=3)


def test_a_scrape_task_message_is_the_one_celery_would_make(db_session: Session) -> None:
    from services.dispatch.broker_client import (
        build_scrape_task_message,
        scrape_task_message_template,
    )
    from services.dispatch.celery_app import app

    requests = [EnqueueRequest("demo", "FL", "dixie", f"C-{n}") for n in range(2)]
    messages = enqueue_tasks(db_session, requests).messages
    template = scrape_task_message_template()

    for message in messages:
        args = [message.envelope]
        celerys = app.amqp.create_task_message(
            str(message.task_id), SCRAPE_TASK_NAME, args, ignore_result=True, argsrepr=repr(args)
        )
        assert build_scrape_task_message(template, message) == celerys
    assert template == scrape_task_message_template()  # the copies left it as it was


def test_rows_written_but_never_published_are_published_by_the_periodic_job(
    db_session: Session,
) -> None:
    from tasks.dispatch_jobs import republish_unpublished

    report = enqueue_tasks(
        db_session,
        [
            EnqueueRequest("demo", "FL", "dixie", "P-1"),
            EnqueueRequest("demo", "FL", "dixie", "P-2"),
        ],
    )
    db_session.commit()  # the publisher "dies" here: committed, never published
    assert_queue_depth(0, "demo")

    assert republish_unpublished(grace_s=0) == 2

    assert_queue_depth(2, "demo")
    for message in report.messages:
        assert task_row(db_session, message.task_id)["published_at"] is not None
    assert republish_unpublished(grace_s=0) == 0


def test_a_long_publish_marks_its_rows_published_as_it_goes(
    db_session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    from db.session import session_scope
    from services.dispatch import broker_client
    from services.dispatch.publishing import find_unpublished

    requests = [EnqueueRequest("demo", "FL", "dixie", f"S-{n}") for n in range(7)]
    messages = enqueue_tasks(db_session, requests).messages
    db_session.commit()
    seen_unpublished: list[set[Any]] = []
    send = broker_client.send_scrape_message

    def send_and_look(*args: Any, **kwargs: Any) -> None:
        # What the periodic re-publisher would pick up at this moment (grace already over).
        with session_scope() as session:
            found = find_unpublished(session, older_than_s=0, now=datetime.now(UTC))
        seen_unpublished.append({message.task_id for message in found})
        send(*args, **kwargs)

    monkeypatch.setattr(broker_client, "PUBLISH_MARK_EVERY", 3)
    monkeypatch.setattr(broker_client, "send_scrape_message", send_and_look)

    assert broker_client.publish_scrape_messages(messages) == 7

    ids = [message.task_id for message in messages]
    assert seen_unpublished[6] == set(ids[6:])  # the first two slices were marked already
    assert seen_unpublished[3] == set(ids[3:])
    assert all(task_row(db_session, task_id)["published_at"] for task_id in ids)
    assert_queue_depth(7, "demo")


def test_marking_rows_published_skips_a_row_another_transaction_holds(
    db_session: Session,
) -> None:
    """A lease that holds a row (it claims some, then puts others off) must not deadlock with
    a publisher stamping the same rows: the stamp skips the held row instead of waiting."""
    from db.session import get_engine, session_scope
    from services.dispatch.publishing import mark_published

    requests = [EnqueueRequest("demo", "FL", "dixie", f"H-{n}") for n in range(2)]
    held, free = (message.task_id for message in enqueue_tasks(db_session, requests).messages)
    db_session.commit()
    other = get_engine().raw_connection()
    try:
        other.cursor().execute("SELECT 1 FROM scrape_tasks WHERE id = %s FOR UPDATE", (held,))
        with session_scope() as session:
            session.execute(text("SET LOCAL lock_timeout = '5s'"))  # a wait would fail the test
            stamped = mark_published(session, [held, free], now=datetime.now(UTC))
    finally:
        other.rollback()
        other.close()

    assert stamped == 1
    assert task_row(db_session, free)["published_at"] is not None
    assert task_row(db_session, held)["published_at"] is None


def test_a_queued_task_whose_message_vanished_is_published_again(
    api_client: TestClient, admin_headers: dict[str, str], db_session: Session
) -> None:
    from services.dispatch.broker_client import queue_for
    from tasks.app import app
    from tasks.dispatch_jobs import republish_vanished

    [kept, _lost] = enqueue(api_client, admin_headers, ["V-1", "V-2"])
    # As when a process dies between kombu's pop and its unacked record: the message is gone.
    with app.connection_for_write() as connection:
        channel = connection.channel()
        assert queue_for("scrape.demo.p3").bind(channel).get(no_ack=True) is not None
        channel.close()
    assert_queue_depth(1, "demo")

    assert republish_vanished(grace_s=60) == 0  # too recent to suspect
    assert republish_vanished(grace_s=0) == 1

    assert_queue_depth(2, "demo")
    assert task_row(db_session, kept)["status"] == "queued"
    assert_ledger_balanced(db_session, enqueued=2)


def test_tasks_published_while_the_queues_are_read_are_not_taken_for_vanished(
    api_client: TestClient,
    admin_headers: dict[str, str],
    db_session: Session,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from services.dispatch import broker_client
    from tasks import dispatch_jobs

    enqueue(api_client, admin_headers, ["R-1", "R-2"])
    read_queue_depths = broker_client.read_queue_depths

    def read_then_enqueue_more(keys: Any) -> Any:
        depths = read_queue_depths(keys)
        enqueue(api_client, admin_headers, ["R-3", "R-4", "R-5"])  # published after the read
        return depths

    monkeypatch.setattr(dispatch_jobs, "read_queue_depths", read_then_enqueue_more)

    assert dispatch_jobs.republish_vanished(grace_s=0) == 0
    assert_queue_depth(5, "demo")


def test_a_task_leased_while_the_queues_are_read_is_not_taken_for_vanished(
    api_client: TestClient,
    admin_headers: dict[str, str],
    worker_headers: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from services.dispatch import broker_client
    from tasks import dispatch_jobs

    enqueue(api_client, admin_headers, ["L-1", "L-2"])
    read_queue_depths = broker_client.read_queue_depths

    def lease_then_read(keys: Any) -> Any:
        assert len(lease(api_client, worker_headers)) == 1  # between the count and the read
        return read_queue_depths(keys)

    monkeypatch.setattr(dispatch_jobs, "read_queue_depths", lease_then_read)

    assert dispatch_jobs.republish_vanished(grace_s=0) == 0
    assert_queue_depth(1, "demo")


def test_the_ledger_balance_endpoint_reports_the_invariant_terms(
    api_client: TestClient, admin_headers: dict[str, str]
) -> None:
    enqueue(api_client, admin_headers, ["S-1", "S-2", "S-3"])

    body = api_client.get("/admin/tasks/balance", headers=admin_headers).json()

    assert body == {"enqueued": 3, "succeeded": 0, "dead": 0, "cancelled": 0, "active": 3}


def test_enqueue_needs_the_admin_token(api_client: TestClient) -> None:
    response = api_client.post("/admin/tasks", json={"tasks": []}, headers={"X-Admin-Token": "no"})

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "UNAUTHORIZED"
    _ = datetime.now(UTC)


def test_an_enqueue_while_the_broker_is_down_is_published_once_it_is_back(
    api_client: TestClient,
    admin_headers: dict[str, str],
    db_session: Session,
    stoppable_broker: TcpProxy,
) -> None:
    from tasks.dispatch_jobs import republish_unpublished

    stoppable_broker.stop()
    [task_id] = enqueue(api_client, admin_headers, ["DOWN-1"])
    stoppable_broker.start()
    assert task_row(db_session, task_id)["published_at"] is None
    assert_queue_depth(0, "demo")

    assert republish_unpublished(grace_s=0) == 1

    assert_queue_depth(1, "demo")
    assert task_row(db_session, task_id)["published_at"] is not None
