"""Dead letters: tasks that used up their attempts, re-drive (by id, by filter, rate-capped,
racing an enqueue of the same parcel) and purge."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.orm import Session

from db.session import new_session, session_scope
from services.dispatch import dead_letters
from services.dispatch.dead_letters import DeadLetterFilter, RedriveReport, redrive_dead_letters
from services.dispatch.enqueue import EnqueueRequest, enqueue_tasks
from services.dispatch.reaper import reap_expired_leases
from tasks.dispatch_jobs import republish_due_retries
from tests.dispatch_helpers import (  # clean_dispatch_queues: autouse fixture
    assert_ledger_balanced,
    clean_dispatch_queues,
    enqueue,
    expire_leases,
    lease,
    platform_policy,
    task_row,
)
from tests.waiting import wait_for

pytestmark = [pytest.mark.broker, pytest.mark.usefixtures(clean_dispatch_queues.__name__)]


def test_after_max_attempts_a_task_is_dead_with_its_reason_and_redrive_works(
    api_client: TestClient,
    admin_headers: dict[str, str],
    worker_headers: dict[str, str],
    db_session: Session,
) -> None:
    with platform_policy("demo", backoff_base_s=0, max_retries=1):
        [task_id] = enqueue(api_client, admin_headers, ["MAX-1"])
        for _ in range(2):
            republish_due_retries()
            assert len(lease(api_client, worker_headers)) == 1
            expire_leases()
            with session_scope() as session:
                reap_expired_leases(session, now=datetime.now(UTC))
    row = task_row(db_session, task_id)
    assert (row["status"], row["attempt"], row["last_error_reason"]) == ("dead", 2, "lease_expired")
    assert_ledger_balanced(db_session, enqueued=1)

    listed = api_client.get(
        "/admin/dead-letters",
        params={"platform": "demo", "reason": "lease_expired"},
        headers=admin_headers,
    ).json()["items"]
    other_reason = api_client.get(
        "/admin/dead-letters", params={"reason": "blocked"}, headers=admin_headers
    ).json()["items"]
    shown = api_client.get(f"/admin/dead-letters/{task_id}", headers=admin_headers).json()
    assert [item["task_id"] for item in listed] == [str(task_id)] and other_reason == []
    assert len(shown["error_history"]) == 2

    redrive = api_client.post(
        "/admin/dead-letters/redrive", json={"task_ids": [str(task_id)]}, headers=admin_headers
    ).json()
    assert redrive["redriven"] == 1
    assert republish_due_retries() == 1
    [task] = lease(api_client, worker_headers)
    assert task["attempt"] == 1
    done = api_client.post(
        f"/internal/tasks/{task_id}/complete",
        json={"lease_token": task["lease_token"]},
        headers=worker_headers,
    )
    assert done.status_code == 200
    assert_ledger_balanced(db_session, enqueued=1)


def test_redrive_by_filter_is_spaced_by_the_rate_cap_and_purge_cancels(
    api_client: TestClient,
    admin_headers: dict[str, str],
    worker_headers: dict[str, str],
    db_session: Session,
) -> None:
    with platform_policy("demo", max_retries=0):
        enqueue(api_client, admin_headers, [f"RD-{i}" for i in range(4)])
    for task in lease(api_client, worker_headers, capacity=4):
        api_client.post(
            f"/internal/tasks/{task['task_id']}/fail",
            json={"reason": "blocked", "message": "captcha"},
            headers=worker_headers,
        )
    assert len(api_client.get("/admin/dead-letters", headers=admin_headers).json()["items"]) == 4

    redrive = api_client.post(
        "/admin/dead-letters/redrive",
        json={"reason": "blocked", "limit": 3, "rate_per_s": 2},
        headers=admin_headers,
    ).json()
    unfiltered = api_client.post("/admin/dead-letters/redrive", json={}, headers=admin_headers)
    purge = api_client.post(
        "/admin/dead-letters/purge", json={"platform": "demo"}, headers=admin_headers
    ).json()

    assert redrive["redriven"] == 3
    first = datetime.fromisoformat(redrive["first_due_at"])
    last = datetime.fromisoformat(redrive["last_due_at"])
    assert abs((last - first).total_seconds() - 1.0) < 0.01  # 3 tasks at 2/s: 0 s, 0.5 s, 1 s
    assert republish_due_retries() == 1  # only the first is due yet
    assert unfiltered.status_code == 422
    assert purge == {"purged": 1}
    balance = assert_ledger_balanced(db_session, enqueued=4)
    assert (balance["cancelled"], balance["active"]) == (1, 3)


def dead_letter(session: Session, parcel_id: str) -> uuid.UUID:
    [message] = enqueue_tasks(session, [EnqueueRequest("demo", "FL", "dixie", parcel_id)]).messages
    session.execute(
        text("UPDATE scrape_tasks SET status = 'dead', finished_at = now() WHERE id = :id"),
        {"id": message.task_id},
    )
    session.commit()
    return message.task_id


def redrive(session: Session, task_id: uuid.UUID) -> RedriveReport:
    return redrive_dead_letters(
        session,
        DeadLetterFilter(task_ids=[task_id]),
        now=datetime.now(UTC),
        limit=10,
        rate_per_s=1,
    )


def test_a_redrive_racing_an_enqueue_of_the_same_parcel_skips_that_dead_letter(
    db_session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    task_id = dead_letter(db_session, "RACE-1")
    check_active = dead_letters._active_identities

    def check_then_enqueue_twin(session: Session, tasks: Any) -> Any:
        found = check_active(session, tasks)
        with session_scope() as other:  # committed after the check, before the update
            enqueue_tasks(other, [EnqueueRequest("demo", "FL", "dixie", "RACE-1")])
        return found

    monkeypatch.setattr(dead_letters, "_active_identities", check_then_enqueue_twin)

    report = redrive(db_session, task_id)
    db_session.commit()

    assert (report.redriven, report.skipped_active) == ([], [task_id])
    assert task_row(db_session, task_id)["status"] == "dead"
    assert_ledger_balanced(db_session, enqueued=2)


def test_a_redrive_waiting_on_an_uncommitted_twin_skips_it_once_the_twin_commits(
    db_session: Session,
) -> None:
    task_id = dead_letter(db_session, "RACE-2")
    twin = new_session()
    enqueue_tasks(twin, [EnqueueRequest("demo", "FL", "dixie", "RACE-2")])
    twin.flush()  # inserted, not committed: invisible to the re-drive's checks
    outcome: dict[str, Any] = {}

    def run_redrive() -> None:
        with session_scope() as session:
            outcome["report"] = redrive(session, task_id)

    redriver = threading.Thread(target=run_redrive)
    redriver.start()
    try:
        wait_for(lambda: lock_waiters(db_session) > 0, timeout_s=10, what="re-drive blocked")
        twin.commit()
    finally:
        twin.close()
        redriver.join(timeout=10)

    assert (outcome["report"].redriven, outcome["report"].skipped_active) == ([], [task_id])
    assert task_row(db_session, task_id)["status"] == "dead"


def lock_waiters(session: Session) -> int:
    session.rollback()
    query = (
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    return int(session.execute(text(query)).scalar_one())
