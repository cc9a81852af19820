"""Retry backoff under the default policy: 30, 60, 120 s, then dead on the fourth failure.

The default policy is ``GATEWAY_RETRY_BACKOFF_BASE_S=30`` and ``GATEWAY_MAX_RETRIES=3`` (the
suite sets neither, and the seed platforms carry no override). Both failure paths are tried:
an HTTP worker's ``fail`` and a Celery scrape that raises. Time passing is simulated by moving
the retry's due time to now; the delay itself is read from the ledger.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.orm import Session

from services.queues import scrape_queue_names
from tasks.dispatch_jobs import republish_due_retries
from tests.celery_workers import WorkerProcess
from tests.dispatch_helpers import (  # clean_dispatch_queues: autouse fixture
    assert_ledger_balanced,
    clean_dispatch_queues,
    enqueue,
    lease,
    task_row,
)
from tests.waiting import wait_for

pytestmark = [pytest.mark.broker, pytest.mark.usefixtures(clean_dispatch_queues.__name__)]
DEFAULT_BACKOFF_S = [30, 60, 120]


def recorded_delay_s(row: dict[str, Any]) -> float:
    """Seconds between the failure's record and the retry's due time, as the ledger holds them."""
    failed_at = datetime.fromisoformat(row["error_history"][-1]["at"])
    return float((row["due_at"] - failed_at).total_seconds())


def let_the_retry_fall_due(db_session: Session, task_id: uuid.UUID) -> None:
    db_session.execute(
        text("UPDATE scrape_tasks SET due_at = now() WHERE id = :id"), {"id": task_id}
    )
    db_session.commit()
    assert republish_due_retries() == 1


def test_an_http_worker_failing_a_task_waits_30_60_120_s_and_the_fourth_failure_is_dead(
    api_client: TestClient,
    admin_headers: dict[str, str],
    worker_headers: dict[str, str],
    db_session: Session,
) -> None:
    [task_id] = enqueue(api_client, admin_headers, ["BACKOFF-1"])
    body = {"reason": "platform_down", "message": "503 from the county site"}
    url = f"/internal/tasks/{task_id}/fail"

    for attempt, expected_s in enumerate(DEFAULT_BACKOFF_S, start=1):
        [task] = lease(api_client, worker_headers)
        assert task["attempt"] == attempt
        answer = api_client.post(url, json=body, headers=worker_headers).json()
        assert _decision(answer) == (True, expected_s, False)
        row = task_row(db_session, task_id)
        assert row["status"] == "retry_wait" and recorded_delay_s(row) == expected_s
        assert lease(api_client, worker_headers) == []  # not before its due time
        let_the_retry_fall_due(db_session, task_id)

    [task] = lease(api_client, worker_headers)
    last = api_client.post(url, json=body, headers=worker_headers).json()

    assert task["attempt"] == 4
    assert _decision(last) == (False, None, True)
    row = task_row(db_session, task_id)
    assert (row["status"], row["attempt"], row["due_at"]) == ("dead", 4, None)
    assert [e["attempt"] for e in row["error_history"]] == [1, 2, 3, 4]
    assert_ledger_balanced(db_session, enqueued=1)


def test_a_celery_scrape_failing_waits_30_60_120_s_and_the_fourth_failure_is_dead(
    api_client: TestClient,
    admin_headers: dict[str, str],
    db_session: Session,
    celery_worker_factory: Callable[..., WorkerProcess],
) -> None:
    [task_id] = enqueue(api_client, admin_headers, ["FAIL-BACKOFF-1"])  # FAIL-: platform down
    celery_worker_factory(scrape_queue_names(["demo"]))

    def row_when(status: str, attempt: int) -> dict[str, Any]:
        def reached() -> dict[str, Any]:
            row = task_row(db_session, task_id)
            return row if (row["status"], row["attempt"]) == (status, attempt) else {}

        return wait_for(reached, timeout_s=30, what=f"attempt {attempt} to be {status}")

    for attempt, expected_s in enumerate(DEFAULT_BACKOFF_S, start=1):
        row = row_when("retry_wait", attempt)
        assert recorded_delay_s(row) == expected_s
        let_the_retry_fall_due(db_session, task_id)

    dead = row_when("dead", 4)

    assert dead["last_error_reason"] == "platform_down" and dead["due_at"] is None
    assert [e["attempt"] for e in dead["error_history"]] == [1, 2, 3, 4]
    assert_ledger_balanced(db_session, enqueued=1)


def _decision(answer: dict[str, object]) -> tuple[object, object, object]:
    """The fail answer's retry decision (the answer carries the original's fields too)."""
    return answer["should_retry"], answer["retry_after"], answer["moved_to_dlq"]
