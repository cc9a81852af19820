"""Celery run leases on real workers: renewed by the node while its run lives, lost within
about one lease when the node dies, closed at once when Celery terminates the run."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.orm import Session

from db.session import session_scope
from services.dispatch.reaper import reap_expired_leases
from services.queues import INGEST_QUEUE, scrape_queue_names
from tasks.dispatch_jobs import republish_due_retries, republish_unpublished
from tests.celery_workers import WorkerProcess
from tests.dispatch_helpers import (  # clean_dispatch_queues: autouse fixture
    assert_ledger_balanced,
    assert_succeeded_tasks_kept_their_results,
    clean_dispatch_queues,
    enqueue,
    platform_policy,
    queue_depth,
    task_row,
)
from tests.outages import TcpProxy
from tests.waiting import wait_for

pytestmark = [pytest.mark.broker, pytest.mark.usefixtures(clean_dispatch_queues.__name__)]
WorkerFactory = Callable[..., WorkerProcess]
DEMO_QUEUES = scrape_queue_names(["demo"])
LEASE_S = 3
SHORT_LEASE = {"GATEWAY_CELERY_RUN_LEASE_S": str(LEASE_S), "GATEWAY_CELERY_RUN_LEASE_RENEW_S": "1"}


@pytest.fixture(autouse=True)
def _succeeded_means_kept(db_session: Session) -> Iterator[None]:
    yield
    assert_succeeded_tasks_kept_their_results(db_session)


def wait_for_status(
    db_session: Session, task_id: uuid.UUID, status: str, *, timeout_s: float = 30
) -> dict[str, Any]:
    return wait_for(
        lambda: (row := task_row(db_session, task_id))["status"] == status and row,
        timeout_s=timeout_s,
        what=f"task {task_id} to be {status}",
    )


def reap_now() -> int:
    """The reaper's pass, as the beat runs it, at the real time."""
    with session_scope() as session:
        return reap_expired_leases(session, now=datetime.now(UTC))


def publish_retry(db_session: Session, task_id: uuid.UUID) -> None:
    """The beat's re-publish of a due retry; a publish lost to a reconnect is made again."""
    republish_due_retries()
    wait_for(
        lambda: (
            republish_unpublished(grace_s=0) >= 0
            and task_row(db_session, task_id)["published_at"] is not None
        ),
        timeout_s=30,
        what=f"task {task_id} to be published again",
    )


def ingested_task_ids(db_session: Session) -> list[str]:
    db_session.rollback()
    return list(db_session.scalars(text("SELECT task_id::text FROM parcel_snapshots ORDER BY 1")))


def test_a_run_longer_than_several_leases_is_kept_alive_by_its_node_and_succeeds_once(
    api_client: TestClient,
    admin_headers: dict[str, str],
    db_session: Session,
    celery_worker_factory: WorkerFactory,
) -> None:
    [task_id] = enqueue(api_client, admin_headers, ["RENEW-1"])
    worker = celery_worker_factory(
        DEMO_QUEUES, extra_env={**SHORT_LEASE, "GATEWAY_DEMO_SCRAPE_DELAY_S": str(4 * LEASE_S)}
    )
    wait_for_status(db_session, task_id, "running")

    def sent_and_never_reaped() -> bool:
        assert reap_now() == 0, "the reaper took a live run"
        return queue_depth("demo", queue=INGEST_QUEUE) == 1

    wait_for(sent_and_never_reaped, timeout_s=60, interval_s=0.25, what="the result to be sent")

    row = task_row(db_session, task_id)
    assert (row["status"], row["attempt"], row["leased_by"]) == ("running", 1, worker.name)
    assert row["error_history"] == []
    assert datetime.now(UTC) - row["started_at"] > timedelta(seconds=4 * LEASE_S)
    celery_worker_factory([INGEST_QUEUE])
    row = wait_for_status(db_session, task_id, "succeeded")
    assert row["attempt"] == 1
    assert ingested_task_ids(db_session) == [str(task_id)]
    assert_ledger_balanced(db_session, enqueued=1)


def test_a_result_waiting_for_the_ingest_holds_its_run_for_the_hand_off_lease(
    api_client: TestClient,
    admin_headers: dict[str, str],
    db_session: Session,
    celery_worker_factory: WorkerFactory,
) -> None:
    from settings import get_settings

    [task_id] = enqueue(api_client, admin_headers, ["HANDOFF-1"])
    celery_worker_factory(DEMO_QUEUES, extra_env=SHORT_LEASE)
    wait_for(lambda: queue_depth("demo", queue=INGEST_QUEUE) == 1, what="the result to be sent")

    # No ingest worker yet: a backlog. The node gives the returned run the hand-off lease.
    handoff_s = get_settings().run_handoff_lease_s
    row = wait_for(
        lambda: (
            (row := task_row(db_session, task_id))["lease_expires_at"]
            > datetime.now(UTC) + timedelta(seconds=handoff_s - 30)
            and row
        ),
        what="the hand-off lease",
    )
    assert row["status"] == "running" and reap_now() == 0
    celery_worker_factory([INGEST_QUEUE])

    row = wait_for_status(db_session, task_id, "succeeded")
    assert row["attempt"] == 1 and row["error_history"] == []
    assert ingested_task_ids(db_session) == [str(task_id)]
    assert_ledger_balanced(db_session, enqueued=1)


def test_a_run_on_a_node_killed_with_kill_9_is_reaped_within_a_lease_and_run_again(
    api_client: TestClient,
    admin_headers: dict[str, str],
    db_session: Session,
    celery_worker_factory: WorkerFactory,
) -> None:
    [task_id] = enqueue(api_client, admin_headers, ["NODE-KILL-1"])
    doomed = celery_worker_factory(
        DEMO_QUEUES, extra_env={**SHORT_LEASE, "GATEWAY_DEMO_SCRAPE_DELAY_S": "60"}
    )
    started = wait_for_status(db_session, task_id, "running")["started_at"]
    wait_for(
        lambda: (
            task_row(db_session, task_id)["lease_expires_at"] > started + timedelta(seconds=LEASE_S)
        ),
        what="the node to renew the run lease",
    )

    doomed.kill()
    killed_at = time.monotonic()
    with platform_policy("demo", backoff_base_s=0):
        wait_for(lambda: reap_now() == 1, timeout_s=3 * LEASE_S, interval_s=0.1)
        reaped_after_s = time.monotonic() - killed_at
        publish_retry(db_session, task_id)
    rescuer = celery_worker_factory(DEMO_QUEUES, extra_env=SHORT_LEASE)
    celery_worker_factory([INGEST_QUEUE])

    row = wait_for_status(db_session, task_id, "succeeded")
    assert reaped_after_s < LEASE_S + 1.5, f"reaped {reaped_after_s:.1f}s after the kill"
    assert row["attempt"] == 2 and row["leased_by"] == rescuer.name
    assert [e["reason"] for e in row["error_history"]] == ["lease_expired"]
    assert ingested_task_ids(db_session) == [str(task_id)]
    assert_ledger_balanced(db_session, enqueued=1)


def test_a_run_terminated_on_a_broker_connection_loss_is_a_failed_attempt_at_once(
    api_client: TestClient,
    admin_headers: dict[str, str],
    db_session: Session,
    celery_worker_factory: WorkerFactory,
    stoppable_broker: TcpProxy,
) -> None:
    from settings import get_settings

    [task_id] = enqueue(api_client, admin_headers, ["CUT-1"])
    slow = {"GATEWAY_DEMO_SCRAPE_DELAY_S": "8"}
    settings = get_settings()
    if settings.celery_broker_url == stoppable_broker.url_for(settings.cache_url):
        # One Redis for everything, as the drill had it: the result backend, which
        # Celery writes while it cancels the run, goes down with the broker.
        slow["GATEWAY_REDIS_URL"] = settings.celery_broker_url
    # The default lease (a minute): what follows is the termination's record, not an expiry.
    worker = celery_worker_factory(DEMO_QUEUES, extra_env=slow)
    celery_worker_factory([INGEST_QUEUE])
    wait_for_status(db_session, task_id, "running")

    with platform_policy("demo", backoff_base_s=0):
        stoppable_broker.stop()
        row = wait_for_status(db_session, task_id, "retry_wait", timeout_s=15)
        assert row["attempt"] == 1 and row["last_error_reason"] == "worker_lost"
        assert "broker connection was lost" in row["last_error_message"]
        assert row["error_history"][0]["worker"] == worker.name

        stoppable_broker.start()
        publish_retry(db_session, task_id)
        row = wait_for_status(db_session, task_id, "succeeded", timeout_s=60)

    # The same node ran it again; the unacked first message, wherever it came back, ran nothing.
    assert row["attempt"] == 2 and row["leased_by"] == worker.name
    assert [e["reason"] for e in row["error_history"]] == ["worker_lost"]
    assert ingested_task_ids(db_session) == [str(task_id)]
    assert_ledger_balanced(db_session, enqueued=1)


def test_a_run_revoked_with_terminate_is_cancelled_at_once(
    api_client: TestClient,
    admin_headers: dict[str, str],
    db_session: Session,
    celery_worker_factory: WorkerFactory,
) -> None:
    from tasks.app import app

    [task_id] = enqueue(api_client, admin_headers, ["REVOKE-1"])
    celery_worker_factory(DEMO_QUEUES, extra_env={"GATEWAY_DEMO_SCRAPE_DELAY_S": "60"})
    wait_for_status(db_session, task_id, "running")

    app.control.revoke(str(task_id), terminate=True)

    row = wait_for_status(db_session, task_id, "cancelled", timeout_s=15)
    assert row["attempt"] == 1 and row["error_history"] == []
    assert_ledger_balanced(db_session, enqueued=1)
