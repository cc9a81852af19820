"""The reference worker (``python -m worker_client``) as a process against a live stack: the
real API on uvicorn, real Celery ingest workers, PostgreSQL and the broker."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from services.queues import INGEST_QUEUE
from tests.celery_workers import WorkerProcess
from tests.conftest import ADMIN_TOKEN, WORKER_TOKEN
from tests.dispatch_helpers import (
    assert_ledger_balanced,
    clean_dispatch_queues,
    enqueue,
    expire_leases,
    platform_policy,
)
from tests.waiting import wait_for
from tests.worker_client_stack import (
    ReferenceWorkerProcess,
    RestartableServer,
    start_reference_worker,
)

pytestmark = [pytest.mark.broker, pytest.mark.usefixtures(clean_dispatch_queues.__name__)]
ADMIN = {"X-Admin-Token": ADMIN_TOKEN}
# Quick enough for a test: short polls, small batches, frequent heartbeats and extensions.
QUICK = [
    "--poll-wait", "1", "--batch-size", "4", "--batch-wait", "0.3",
    "--heartbeat-interval", "0.3", "--extend-every", "1", "--drain-timeout", "20",
]  # fmt: skip
StartWorker = Callable[..., ReferenceWorkerProcess]


@pytest.fixture
def gateway_url(api_app: Any) -> Iterator[str]:
    server = RestartableServer(api_app)
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def start_worker(gateway_url: str, tmp_path: Path) -> Iterator[StartWorker]:
    started: list[ReferenceWorkerProcess] = []

    def start(worker_id: str, *options: str, scrape_delay_s: float = 0.0) -> ReferenceWorkerProcess:
        worker = start_reference_worker(
            gateway_url,
            WORKER_TOKEN,
            worker_id,
            log_dir=tmp_path,
            options=[*QUICK, *options],
            extra_env={"GATEWAY_DEMO_SCRAPE_DELAY_S": str(scrape_delay_s)},
        )
        started.append(worker)
        return worker

    yield start
    for worker in started:
        if worker.is_running():
            worker.kill()


def enqueue_parcels(gateway_url: str, count: int) -> list[uuid.UUID]:
    parcel_ids = [f"REF-{uuid.uuid4().hex[:8]}-{n}" for n in range(count)]
    with httpx.Client(base_url=gateway_url, timeout=10) as admin:
        return enqueue(admin, ADMIN, parcel_ids)


def statuses(session: Session, task_ids: list[uuid.UUID]) -> dict[uuid.UUID, dict[str, Any]]:
    session.rollback()  # see the other connections' commits
    rows = session.execute(
        text("SELECT * FROM scrape_tasks WHERE id = ANY(:ids)"), {"ids": task_ids}
    ).mappings()
    return {row["id"]: dict(row) for row in rows}


def count_where(session: Session, status: str, worker_id: str, ids: list[uuid.UUID]) -> int:
    rows = statuses(session, ids).values()
    return sum(1 for row in rows if row["status"] == status and row["leased_by"] == worker_id)


def pages_uploaded(session: Session, task_ids: list[uuid.UUID]) -> int:
    session.rollback()  # see the other connections' commits
    query = text("SELECT count(DISTINCT task_id) FROM raw_files WHERE task_id = ANY(:ids)")
    return int(session.execute(query, {"ids": task_ids}).scalar_one())


def ingested_with_their_pages(session: Session, task_ids: list[uuid.UUID]) -> int:
    """Tasks whose result is a parcel snapshot pointing at the page the worker uploaded."""
    session.rollback()
    return int(
        session.execute(
            text(
                "SELECT count(DISTINCT s.task_id) FROM parcel_snapshots s"
                " JOIN raw_files f ON f.task_id = s.task_id AND f.sha256 = s.raw_html_hash"
                " WHERE s.task_id = ANY(:ids)"
            ),
            {"ids": task_ids},
        ).scalar_one()
    )


def test_the_reference_worker_leases_scrapes_uploads_pages_and_its_results_are_ingested(
    gateway_url: str,
    start_worker: StartWorker,
    celery_worker_factory: Callable[..., WorkerProcess],
    db_session: Session,
) -> None:
    task_ids = enqueue_parcels(gateway_url, 10)
    celery_worker_factory([INGEST_QUEUE])
    worker = start_worker("ref-e2e", "--concurrency", "3")

    wait_for(
        lambda: count_where(db_session, "succeeded", "ref-e2e", task_ids) == 10,
        timeout_s=60,
        what=f"every task done by the reference worker; its log:\n{worker.log()}",
    )
    wait_for(lambda: ingested_with_their_pages(db_session, task_ids) == 10, what="the ingest")
    worker.terminate()

    assert worker.wait_exit() == 0, worker.log()
    assert {row["attempt"] for row in statuses(db_session, task_ids).values()} == {1}
    assert_ledger_balanced(db_session, enqueued=10)


def test_a_killed_reference_workers_tasks_come_back_to_another(
    gateway_url: str, start_worker: StartWorker, db_session: Session
) -> None:
    from tasks.dispatch_jobs import reap_leases, republish_due_retries

    task_ids = enqueue_parcels(gateway_url, 2)
    doomed = start_worker("ref-doomed", "--concurrency", "2", scrape_delay_s=120)
    wait_for(
        lambda: count_where(db_session, "leased", "ref-doomed", task_ids) == 2,
        what=f"the doomed worker to hold both tasks; its log:\n{doomed.log()}",
    )
    with httpx.Client(base_url=gateway_url, headers=ADMIN, timeout=10) as admin:
        wait_for(
            lambda: (
                [
                    (w["active_tasks"], w["platforms"], w["current_leases"])
                    for w in admin.get("/admin/workers").json()["workers"]
                    if w["worker_id"] == "ref-doomed"
                ]
                == [(2, ["demo"], 2)]
            ),
            what="the heartbeat to report both running tasks",
        )
    doomed.kill()

    expire_leases()  # the leases run out: nobody extends them any more
    with platform_policy("demo", backoff_base_s=0):
        assert reap_leases()["expired"] == 2
        assert republish_due_retries() == 2
    heir = start_worker("ref-heir", "--concurrency", "2")

    wait_for(
        lambda: count_where(db_session, "succeeded", "ref-heir", task_ids) == 2,
        what=f"the tasks done by the second worker; its log:\n{heir.log()}",
    )
    rows = statuses(db_session, task_ids).values()
    assert {(row["attempt"], row["last_error_reason"]) for row in rows} == {(2, "lease_expired")}


def test_sigterm_finishes_running_tasks_sends_their_results_and_gives_back_the_rest(
    gateway_url: str,
    start_worker: StartWorker,
    celery_worker_factory: Callable[..., WorkerProcess],
    db_session: Session,
) -> None:
    task_ids = enqueue_parcels(gateway_url, 6)
    celery_worker_factory([INGEST_QUEUE])
    # Results wait for a batch of 10 or 30 s: only the shutdown sends them.
    worker = start_worker(
        "ref-term", "--concurrency", "2", "--batch-size", "10", "--batch-wait", "30",
        scrape_delay_s=1.5,
    )  # fmt: skip
    # Two tasks scraped, their pages uploaded, their results held for the batch. (Leased rows
    # alone do not say the worker started them: a lease answer arriving after the signal is
    # given back untouched.)
    wait_for(
        lambda: pages_uploaded(db_session, task_ids) >= 2,
        what=f"two pages uploaded; the worker's log:\n{worker.log()}",
    )
    worker.terminate()

    assert worker.wait_exit(timeout_s=30) == 0, worker.log()
    rows = statuses(db_session, task_ids)
    by_status: dict[str, list[uuid.UUID]] = {}
    for task_id, row in rows.items():
        by_status.setdefault(row["status"], []).append(task_id)
    assert set(by_status) <= {"succeeded", "queued", "retry_wait"}, by_status
    done = by_status["succeeded"]
    assert len(done) >= 2  # the two whose results waited in the batch, and any mid-scrape
    wait_for(lambda: ingested_with_their_pages(db_session, done) == len(done), what="their results")
    for task_id in by_status.get("retry_wait", []):  # leased by the poll under way: given back
        assert rows[task_id]["last_error_reason"] == "other"
        assert "stopping" in rows[task_id]["last_error_message"]
    assert_ledger_balanced(db_session, enqueued=6)


def test_pause_resume_and_shutdown_from_the_admin_api_reach_the_reference_worker(
    gateway_url: str, start_worker: StartWorker, db_session: Session
) -> None:
    worker = start_worker("ref-steered", "--concurrency", "1")
    admin = httpx.Client(base_url=gateway_url, headers=ADMIN, timeout=10)

    def registered() -> bool:
        workers = admin.get("/admin/workers").json()["workers"]
        return any(w["worker_id"] == "ref-steered" for w in workers)

    def send(command: str) -> None:
        answer = admin.post("/admin/workers/ref-steered/commands", json={"command": command})
        assert answer.status_code == 201, answer.text
        wait_for(lambda: f"command from the gateway: {command}" in worker.log(), what=command)

    with admin:
        wait_for(registered, what=f"the worker's first heartbeat; its log:\n{worker.log()}")
        send("pause")
        wait_for(lambda: "leasing paused" in worker.log(), what="the poll under way to end")
        task_ids = enqueue_parcels(gateway_url, 1)
        assert statuses(db_session, task_ids)[task_ids[0]]["status"] == "queued"
        send("resume")
        wait_for(
            lambda: count_where(db_session, "succeeded", "ref-steered", task_ids) == 1,
            what="the task done after resume",
        )
        send("shutdown")

    assert worker.wait_exit() == 0, worker.log()


def test_the_reference_worker_refuses_to_start_without_a_token_naming_the_setting(
    tmp_path: Path,
) -> None:
    worker = start_reference_worker("http://127.0.0.1:9", "", "ref-no-token", log_dir=tmp_path)

    assert worker.wait_exit() == 2
    assert "TAXLIEN_WORKER_TOKEN" in worker.log()
