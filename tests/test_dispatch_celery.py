"""Celery workers consume the scrape queues natively: ``scrape.parcel`` with its bookkeeping,
under kill -9, duplicate deliveries and scraper failures."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from services.dispatch.outcome_metrics import DeliveryPath
from services.queues import INGEST_QUEUE, MAINTENANCE_QUEUE, scrape_queue_names
from tasks.dispatch_jobs import reap_leases, republish_due_retries
from tests.celery_workers import WorkerProcess
from tests.dispatch_helpers import (  # clean_dispatch_queues: autouse fixture
    assert_ledger_balanced,
    assert_queue_depth,
    assert_succeeded_tasks_kept_their_results,
    clean_dispatch_queues,
    duplicates_dropped,
    enqueue,
    expire_leases,
    lease,
    platform_policy,
    publish_duplicate,
    queue_depth,
    task_row,
)
from tests.waiting import wait_for

pytestmark = [pytest.mark.broker, pytest.mark.usefixtures(clean_dispatch_queues.__name__)]
WorkerFactory = Callable[..., WorkerProcess]
DEMO_QUEUES = scrape_queue_names(["demo"])


def wait_for_status(db_session: Session, task_id: uuid.UUID, status: str) -> dict[str, Any]:
    return wait_for(
        lambda: (row := task_row(db_session, task_id))["status"] == status and row,
        timeout_s=30,
        what=f"task {task_id} to be {status}",
    )


def take_ingest_items() -> list[dict[str, Any]]:
    """Drain the ingest queue (no ingest worker runs here) and return the result items."""
    from services.dispatch.broker_client import queue_for
    from tasks.app import app

    items: list[dict[str, Any]] = []
    with app.connection_for_write() as connection:
        channel = connection.channel()
        queue = queue_for(INGEST_QUEUE).bind(channel)
        while (message := queue.get(no_ack=True, accept=["json"])) is not None:
            assert message.headers["task"] == "ingest.parcel_results"
            body = (
                message.body if isinstance(message.body, (list, dict)) else json.loads(message.body)
            )
            args = body[0]
            items.extend(args[0])
        channel.close()
    return items


@pytest.fixture(autouse=True)
def _succeeded_means_kept(db_session: Session) -> Iterator[None]:
    yield
    assert_succeeded_tasks_kept_their_results(db_session)


def ingested_task_ids(db_session: Session) -> list[str]:
    """The tasks whose results became snapshots, one row per scrape ingested."""
    from sqlalchemy import text

    db_session.rollback()
    query = text("SELECT task_id::text FROM parcel_snapshots ORDER BY 1")
    return list(db_session.scalars(query))


def test_a_celery_worker_scrapes_a_demo_task_and_hands_the_result_to_ingest(
    api_client: TestClient,
    admin_headers: dict[str, str],
    db_session: Session,
    celery_worker_factory: WorkerFactory,
) -> None:
    [task_id] = enqueue(api_client, admin_headers, ["01-08-13-0000-0363-0110"])
    worker = celery_worker_factory(DEMO_QUEUES)

    wait_for(lambda: queue_depth("demo", queue=INGEST_QUEUE) == 1, timeout_s=30)

    row = task_row(db_session, task_id)
    # Sent is not kept: the task succeeds only once its result is ingested.
    assert row["status"] == "running"
    assert row["attempt"] == 1 and row["leased_by"] == worker.name
    [item] = take_ingest_items()
    assert item["task_id"] == str(task_id)
    assert (item["platform"], item["state"], item["county"]) == ("demo", "FL", "dixie")
    assert item["parcel_id"] == "01-08-13-0000-0363-0110"
    assert item["data"]["total_due"].startswith("$") and "/" in item["data"]["last_sale_date"]
    assert datetime.fromisoformat(item["scraped_at"]).tzinfo is not None
    assert_ledger_balanced(db_session, enqueued=1)


def test_a_scraped_task_succeeds_once_its_result_is_ingested(
    api_client: TestClient,
    admin_headers: dict[str, str],
    db_session: Session,
    celery_worker_factory: WorkerFactory,
) -> None:
    [task_id] = enqueue(api_client, admin_headers, ["01-08-13-0000-0363-0111"])
    celery_worker_factory(DEMO_QUEUES)
    wait_for(lambda: queue_depth("demo", queue=INGEST_QUEUE) == 1, timeout_s=30)
    assert task_row(db_session, task_id)["status"] == "running"

    celery_worker_factory([INGEST_QUEUE])

    wait_for_status(db_session, task_id, "succeeded")
    assert ingested_task_ids(db_session) == [str(task_id)]
    assert_ledger_balanced(db_session, enqueued=1)


def test_kill_9_of_a_celery_worker_mid_task_runs_the_task_again_and_it_succeeds_once(
    api_client: TestClient,
    admin_headers: dict[str, str],
    db_session: Session,
    celery_worker_factory: WorkerFactory,
) -> None:
    [task_id] = enqueue(api_client, admin_headers, ["KILL-1"])
    slow_env = {"GATEWAY_DEMO_SCRAPE_DELAY_S": "60", "GATEWAY_CELERY_RUN_LEASE_S": "2"}
    slow = celery_worker_factory(DEMO_QUEUES, extra_env=slow_env)
    wait_for_status(db_session, task_id, "running")

    slow.kill()
    with platform_policy("demo", backoff_base_s=0):
        # The run lease (2 s here) running out is how the ledger notices the dead worker.
        wait_for(lambda: reap_leases()["expired"] == 1, timeout_s=10, interval_s=0.2)
        assert republish_due_retries() == 1
    celery_worker_factory(DEMO_QUEUES)
    celery_worker_factory([INGEST_QUEUE])

    row = wait_for_status(db_session, task_id, "succeeded")

    assert row["attempt"] == 2
    assert [e["reason"] for e in row["error_history"]] == ["lease_expired"]
    assert ingested_task_ids(db_session) == [str(task_id)]
    assert_ledger_balanced(db_session, enqueued=1)


def test_a_duplicate_message_reaching_a_celery_worker_is_dropped_without_running(
    api_client: TestClient,
    admin_headers: dict[str, str],
    db_session: Session,
    celery_worker_factory: WorkerFactory,
) -> None:
    [task_id] = enqueue(api_client, admin_headers, ["TWICE-1"])
    publish_duplicate(db_session, task_id)
    [sentinel] = enqueue(api_client, admin_headers, ["AFTER-1"])
    assert_queue_depth(3, "demo")
    dropped_before = duplicates_dropped(DeliveryPath.CELERY)
    celery_worker_factory(DEMO_QUEUES)
    celery_worker_factory([INGEST_QUEUE])

    wait_for_status(db_session, sentinel, "succeeded")  # FIFO: both copies were handled

    assert_queue_depth(0, "demo")
    assert task_row(db_session, task_id)["attempt"] == 1
    assert duplicates_dropped(DeliveryPath.CELERY) == dropped_before + 1
    assert ingested_task_ids(db_session) == sorted([str(task_id), str(sentinel)])
    assert_ledger_balanced(db_session, enqueued=2)


def test_scraper_failures_are_retried_from_the_ledger_then_dead_lettered(
    api_client: TestClient,
    admin_headers: dict[str, str],
    db_session: Session,
    celery_worker_factory: WorkerFactory,
) -> None:
    with platform_policy("demo", backoff_base_s=0, max_retries=1):
        [flaky, broken] = enqueue(api_client, admin_headers, ["FAIL-1", "BROKEN-1"])
        celery_worker_factory(DEMO_QUEUES)
        wait_for_status(db_session, broken, "dead")
        wait_for_status(db_session, flaky, "retry_wait")
        assert republish_due_retries() == 1
        dead = wait_for_status(db_session, flaky, "dead")

    assert (dead["attempt"], dead["last_error_reason"]) == (2, "platform_down")
    assert [e["reason"] for e in dead["error_history"]] == ["platform_down", "platform_down"]
    broken_row = task_row(db_session, broken)
    assert (broken_row["attempt"], broken_row["last_error_reason"]) == (1, "format_changed")
    assert ingested_task_ids(db_session) == [] and take_ingest_items() == []
    assert_ledger_balanced(db_session, enqueued=2)


def test_demo_tasks_flow_end_to_end_into_searchable_parcels(
    api_client: TestClient,
    admin_headers: dict[str, str],
    db_session: Session,
    celery_worker_factory: WorkerFactory,
) -> None:
    from sqlalchemy import text

    ids = enqueue(api_client, admin_headers, ["0108130000363", "0108130000364"])
    celery_worker_factory([*DEMO_QUEUES, INGEST_QUEUE], concurrency=2)

    for task_id in ids:
        wait_for_status(db_session, task_id, "succeeded")

    def ingested() -> list[Any]:
        db_session.rollback()
        query = text("SELECT parcel_id, owner_name, total_due, tax_year FROM parcels ORDER BY 1")
        rows = list(db_session.execute(query).all())
        return rows if len(rows) == 2 else []

    parcels = wait_for(ingested, timeout_s=30, what="the demo parcels to be ingested")

    assert [p.parcel_id for p in parcels] == ["0108130000363", "0108130000364"]
    assert all(p.owner_name and p.total_due is not None and p.tax_year for p in parcels)
    assert_ledger_balanced(db_session, enqueued=2)


def test_the_periodic_jobs_run_on_a_maintenance_worker(
    api_client: TestClient,
    admin_headers: dict[str, str],
    worker_headers: dict[str, str],
    db_session: Session,
    celery_worker_factory: WorkerFactory,
) -> None:
    from tasks.app import app

    [task_id] = enqueue(api_client, admin_headers, ["BEAT-1"])
    [task] = lease(api_client, worker_headers)
    expire_leases()
    celery_worker_factory([MAINTENANCE_QUEUE])

    with platform_policy("demo", backoff_base_s=0):
        app.send_task("maintenance.reap_leases")
        wait_for_status(db_session, task_id, "retry_wait")
        app.send_task("maintenance.republish_due_retries")

        def requeued_and_published() -> dict[str, Any]:
            row = task_row(db_session, task_id)
            is_done = row["status"] == "queued" and row["published_at"] is not None
            return row if is_done else {}

        row = wait_for(requeued_and_published, timeout_s=30)

    assert row["status"] == "queued" and row["attempt"] == 1
    assert [t["task_id"] for t in lease(api_client, worker_headers)] == [task["task_id"]]


def test_a_killed_pool_child_hands_its_task_back_and_the_node_reruns_it_at_once(
    api_client: TestClient,
    admin_headers: dict[str, str],
    db_session: Session,
    celery_worker_factory: WorkerFactory,
) -> None:
    [task_id] = enqueue(api_client, admin_headers, ["OOM-1"])
    celery_worker_factory([INGEST_QUEUE])
    worker = celery_worker_factory(DEMO_QUEUES, extra_env={"GATEWAY_DEMO_SCRAPE_DELAY_S": "3"})
    wait_for_status(db_session, task_id, "running")

    worker.kill_children()  # as the OOM killer would; the main process requeues the message

    row = wait_for_status(db_session, task_id, "succeeded")
    assert row["attempt"] == 2 and row["leased_by"] == worker.name
    assert [e["reason"] for e in row["error_history"]] == ["worker_lost"]
    assert ingested_task_ids(db_session) == [str(task_id)]
    assert_ledger_balanced(db_session, enqueued=1)


def test_a_task_of_a_platform_without_a_scraper_is_dead_lettered_with_a_clear_reason(
    api_client: TestClient,
    admin_headers: dict[str, str],
    db_session: Session,
    celery_worker_factory: WorkerFactory,
) -> None:
    [task_id] = enqueue(api_client, admin_headers, ["QP-1"], platform="qpublic")
    celery_worker_factory(scrape_queue_names(["qpublic"]))

    row = wait_for_status(db_session, task_id, "dead")

    assert (row["attempt"], row["last_error_reason"]) == (1, "no_scraper")
    assert "qpublic" in row["last_error_message"]
    assert_ledger_balanced(db_session, enqueued=1)


def test_a_task_handed_back_by_a_dead_node_is_taken_over_by_another_node_at_once(
    api_client: TestClient,
    admin_headers: dict[str, str],
    db_session: Session,
    celery_worker_factory: WorkerFactory,
) -> None:
    import time

    import redis

    from services.dispatch.broker_client import restore_expired_unacked
    from settings import get_settings

    [task_id] = enqueue(api_client, admin_headers, ["NODE-1"])
    doomed = celery_worker_factory(DEMO_QUEUES, extra_env={"GATEWAY_DEMO_SCRAPE_DELAY_S": "60"})
    wait_for_status(db_session, task_id, "running")

    doomed.kill()
    settings = get_settings()
    if settings.is_redis_broker:
        # RabbitMQ requeues at once; kombu's Redis transport waits for the visibility
        # timeout, which this test skips by ageing the unacked entry.
        broker = redis.Redis.from_url(settings.celery_broker_url)
        for tag in broker.zrange("unacked_index", 0, -1):
            assert isinstance(tag, bytes)
            broker.zadd("unacked_index", {tag: time.time() - settings.visibility_timeout_s - 60})
        broker.close()
        restore_expired_unacked()
    rescuer = celery_worker_factory(DEMO_QUEUES)
    celery_worker_factory([INGEST_QUEUE])

    row = wait_for_status(db_session, task_id, "succeeded")

    assert row["attempt"] == 2 and row["leased_by"] == rescuer.name
    assert [e["reason"] for e in row["error_history"]] == ["worker_lost"]
    assert ingested_task_ids(db_session) == [str(task_id)]
    assert_ledger_balanced(db_session, enqueued=1)
