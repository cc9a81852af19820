"""HTTP leasing: strict priority, capacity, long poll, fencing, idempotent complete, fail."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.orm import Session

from tasks.dispatch_jobs import republish_due_retries
from tests.dispatch_helpers import (
    assert_ledger_balanced,
    assert_queue_depth,
    clean_dispatch_queues,
    enqueue,
    lease,
    platform_disabled,
    platform_policy,
    poll_with_every_broker_connection_held,  # clean_dispatch_queues: autouse fixture
    publish_duplicate,
    task_row,
)

pytestmark = [pytest.mark.broker, pytest.mark.usefixtures(clean_dispatch_queues.__name__)]
OTHER_WORKER = {"X-Worker-Token": "second-worker-token", "X-Worker-ID": "worker-test-2"}
REPORTED = {"status": "reported", "success": True}  # the original's fields of a fail answer


def test_strict_priority_hands_out_every_p1_of_any_platform_before_any_p2(
    api_client: TestClient, admin_headers: dict[str, str], worker_headers: dict[str, str]
) -> None:
    enqueue(api_client, admin_headers, ["LOW"], priority=4)
    enqueue(api_client, admin_headers, ["NORMAL"], priority=3)
    enqueue(api_client, admin_headers, ["Q-URGENT"], platform="qpublic", priority=1)
    enqueue(api_client, admin_headers, ["HIGH"], priority=2)
    enqueue(api_client, admin_headers, ["URGENT"], priority=1)

    order = []
    for _ in range(5):
        [task] = lease(api_client, worker_headers, platforms="demo,qpublic")
        order.append((task["target"]["parcel_id"], task["priority"]))

    assert sorted(order[:2]) == [("Q-URGENT", 1), ("URGENT", 1)]
    assert order[2:] == [("HIGH", 2), ("NORMAL", 3), ("LOW", 4)]
    assert lease(api_client, worker_headers, platforms="demo,qpublic") == []


def test_a_lease_batch_is_capped_by_capacity_and_carries_the_work_task_shape(
    api_client: TestClient, admin_headers: dict[str, str], worker_headers: dict[str, str]
) -> None:
    ids = enqueue(api_client, admin_headers, [f"C-{i}" for i in range(5)])

    first = lease(api_client, worker_headers, capacity=3)
    second = lease(api_client, worker_headers, capacity=3)

    assert (len(first), len(second)) == (3, 2)
    assert {uuid.UUID(t["task_id"]) for t in first + second} == set(ids)
    task = first[0]
    assert task["type"] == "parcel" and task["platform"] == "demo" and task["attempt"] == 1
    assert set(task["target"]) == {"parcel_id", "state", "county", "url"}
    assert task["lease_expires_at"] and task["created_at"] and task["lease_token"] > 0
    assert_queue_depth(0, "demo")


def test_an_empty_poll_returns_no_tasks_and_a_retry_hint(
    api_client: TestClient, worker_headers: dict[str, str]
) -> None:
    started = time.monotonic()
    response = api_client.get(
        "/internal/work", params={"platforms": "demo", "wait": 0.6}, headers=worker_headers
    )

    assert response.status_code == 200
    assert response.json()["tasks"] == []
    assert response.json()["retry_after"] > 0
    assert time.monotonic() - started >= 0.5


def test_a_long_poll_returns_as_soon_as_work_arrives(
    api_client: TestClient,
    admin_headers: dict[str, str],
    worker_headers: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from gateway_api.routes import work
    from services.dispatch.broker_client import lease_from_broker as real_lease

    found_nothing = threading.Event()

    def lease_and_tell(**options: Any) -> Any:
        leased = real_lease(**options)  # the route's own broker read, unchanged
        if not leased:
            found_nothing.set()
        return leased

    monkeypatch.setattr(work, "lease_from_broker", lease_and_tell)
    outcome: dict[str, Any] = {}

    def poll() -> None:
        response = api_client.get(
            "/internal/work", params={"platforms": "demo", "wait": 20}, headers=worker_headers
        )
        outcome["answered_at"] = time.monotonic()
        outcome["tasks"] = response.json()["tasks"]

    poller = threading.Thread(target=poll)
    poller.start()
    assert found_nothing.wait(timeout=10), "the poll never reached the broker"
    enqueued_at = time.monotonic()
    enqueue(api_client, admin_headers, ["LATE-1"])
    poller.join(timeout=25)

    assert [t["target"]["parcel_id"] for t in outcome["tasks"]] == ["LATE-1"]
    # Far sooner than the 20 s wait: within a few poll intervals of the work arriving.
    assert outcome["answered_at"] - enqueued_at < 5


def test_unknown_platforms_are_rejected(
    api_client: TestClient, worker_headers: dict[str, str]
) -> None:
    # capacity out of range is read as the original read it: tests/test_original_contract.py
    unknown = api_client.get("/internal/work", params={"platforms": "nope"}, headers=worker_headers)

    assert unknown.status_code == 422 and "nope" in unknown.json()["error"]["message"]


def test_a_disabled_platform_in_a_poll_is_skipped_and_the_others_still_lease(
    api_client: TestClient, admin_headers: dict[str, str], worker_headers: dict[str, str]
) -> None:
    enqueue(api_client, admin_headers, ["D-1"])

    with platform_disabled("qpublic"):
        mixed = lease(api_client, worker_headers, platforms="demo,qpublic")
        only_disabled = api_client.get(
            "/internal/work", params={"platforms": "qpublic", "wait": 5}, headers=worker_headers
        )
        unknown = api_client.get(
            "/internal/work", params={"platforms": "demo,nope"}, headers=worker_headers
        )

    assert [t["target"]["parcel_id"] for t in mixed] == ["D-1"]
    assert only_disabled.status_code == 200, only_disabled.text
    assert only_disabled.json() == {"tasks": [], "retry_after": only_disabled.json()["retry_after"]}
    assert only_disabled.json()["retry_after"] > 0
    assert unknown.status_code == 422 and "nope" in unknown.json()["error"]["message"]


def test_a_poll_finding_every_broker_connection_busy_is_a_503_with_a_retry_hint(
    api_client: TestClient, worker_headers: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    response = poll_with_every_broker_connection_held(api_client, worker_headers, monkeypatch)

    assert response.status_code == 503, response.text
    assert response.json()["error"]["code"] == "SERVICE_UNAVAILABLE"
    assert response.headers["Retry-After"] == "1"
    assert lease(api_client, worker_headers) == []  # the pool works again once released


def test_only_the_current_lease_holder_with_the_current_token_may_complete(
    api_client: TestClient,
    admin_headers: dict[str, str],
    worker_headers: dict[str, str],
    db_session: Session,
) -> None:
    [task_id] = enqueue(api_client, admin_headers, ["F-1"])
    [task] = lease(api_client, worker_headers)
    url = f"/internal/tasks/{task_id}/complete"
    token = task["lease_token"]

    by_other = api_client.post(url, json={"lease_token": token}, headers=OTHER_WORKER)
    stale = api_client.post(url, json={"lease_token": token - 1}, headers=worker_headers)
    assert (by_other.status_code, stale.status_code) == (409, 409)
    assert "worker-test-1" not in by_other.json()["error"]["message"]  # never names the holder
    assert task_row(db_session, task_id)["status"] == "leased"

    done = api_client.post(url, json={"lease_token": token}, headers=worker_headers)
    again = api_client.post(url, json={"lease_token": token}, headers=worker_headers)

    assert done.status_code == 200 and done.json()["already_completed"] is False
    assert again.status_code == 200 and again.json()["already_completed"] is True
    assert task_row(db_session, task_id)["status"] == "succeeded"
    assert api_client.post(url, headers=OTHER_WORKER).status_code == 409
    assert_ledger_balanced(db_session, enqueued=1)


def test_a_token_from_an_earlier_lease_of_the_same_task_is_refused(
    api_client: TestClient,
    admin_headers: dict[str, str],
    worker_headers: dict[str, str],
    db_session: Session,
) -> None:
    [task_id] = enqueue(api_client, admin_headers, ["F-2"])
    [first] = lease(api_client, worker_headers)
    with platform_policy("demo", backoff_base_s=0):
        failed = api_client.post(
            f"/internal/tasks/{task_id}/fail",
            json={"reason": "network_error", "message": "x", "lease_token": first["lease_token"]},
            headers=worker_headers,
        )
    assert failed.json() == {
        "should_retry": True,
        "retry_after": 0,
        "moved_to_dlq": False,
        **REPORTED,
    }
    assert republish_due_retries() == 1
    [second] = lease(api_client, worker_headers)

    stale = api_client.post(
        f"/internal/tasks/{task_id}/complete",
        json={"lease_token": first["lease_token"]},
        headers=worker_headers,
    )

    assert second["attempt"] == 2 and second["lease_token"] > first["lease_token"]
    assert stale.status_code == 409 and "stale" in stale.json()["error"]["message"]


def test_fail_answers_with_backoff_then_moves_the_last_attempt_to_dead_letters(
    api_client: TestClient,
    admin_headers: dict[str, str],
    worker_headers: dict[str, str],
    db_session: Session,
) -> None:
    [task_id] = enqueue(api_client, admin_headers, ["D-1"])
    db_session.execute(text("UPDATE scrape_tasks SET max_retries = 1"))
    db_session.commit()
    [task] = lease(api_client, worker_headers)
    body = {"reason": "platform_down", "message": "503 from county site", "retry_suggested": True}

    first = api_client.post(f"/internal/tasks/{task_id}/fail", json=body, headers=worker_headers)
    assert first.json() == {
        "should_retry": True,
        "retry_after": 30,
        "moved_to_dlq": False,
        **REPORTED,
    }
    row = task_row(db_session, task_id)
    assert row["status"] == "retry_wait" and row["due_at"] is not None

    db_session.execute(text("UPDATE scrape_tasks SET due_at = now()"))
    db_session.commit()
    republish_due_retries()
    [again] = lease(api_client, worker_headers)
    last = api_client.post(f"/internal/tasks/{task_id}/fail", json=body, headers=worker_headers)

    assert last.json() == {
        "should_retry": False,
        "retry_after": None,
        "moved_to_dlq": True,
        **REPORTED,
    }
    row = task_row(db_session, task_id)
    assert (row["status"], row["last_error_reason"], row["attempt"]) == ("dead", "platform_down", 2)
    assert [e["attempt"] for e in row["error_history"]] == [1, 2]
    assert task["attempt"] == 1 and again["attempt"] == 2
    assert_ledger_balanced(db_session, enqueued=1)


def test_fail_keeps_a_reason_of_the_workers_own_words_in_the_message(
    api_client: TestClient,
    admin_headers: dict[str, str],
    worker_headers: dict[str, str],
    db_session: Session,
) -> None:
    [task_id] = enqueue(api_client, admin_headers, ["R-1"])
    lease(api_client, worker_headers)

    response = api_client.post(
        f"/internal/tasks/{task_id}/fail",
        json={"reason": "bored", "message": "site said come back later"},
        headers=worker_headers,
    )

    assert response.status_code == 200 and response.json()["should_retry"] is True
    row = task_row(db_session, task_id)
    assert row["last_error_reason"] == "other"
    assert row["error_history"][-1]["message"] == "bored: site said come back later"


def test_a_holder_can_extend_its_lease(
    api_client: TestClient, admin_headers: dict[str, str], worker_headers: dict[str, str]
) -> None:
    [task_id] = enqueue(api_client, admin_headers, ["E-1"])
    [task] = lease(api_client, worker_headers)

    extended = api_client.post(
        f"/internal/tasks/{task_id}/extend",
        json={"lease_token": task["lease_token"], "extend_s": 3000},
        headers=worker_headers,
    )
    by_other = api_client.post(f"/internal/tasks/{task_id}/extend", headers=OTHER_WORKER)

    assert extended.status_code == 200
    assert extended.json()["lease_expires_at"] > task["lease_expires_at"]
    assert by_other.status_code == 409


def test_batch_complete_reports_each_item(
    api_client: TestClient,
    admin_headers: dict[str, str],
    worker_headers: dict[str, str],
    db_session: Session,
) -> None:
    enqueue(api_client, admin_headers, ["B-1", "B-2", "B-3"])
    tasks = lease(api_client, worker_headers, capacity=3)
    items = [{"task_id": t["task_id"], "lease_token": t["lease_token"]} for t in tasks]
    items[2]["lease_token"] += 1000
    missing = str(uuid.uuid4())

    first = api_client.post(
        "/internal/tasks/complete",
        json={"tasks": [*items, {"task_id": missing}]},
        headers=worker_headers,
    ).json()
    second = api_client.post(
        "/internal/tasks/complete", json={"tasks": items[:1]}, headers=worker_headers
    ).json()

    assert sorted(first["completed"]) == sorted(t["task_id"] for t in tasks[:2])
    assert {(e["task_id"], e["code"]) for e in first["errors"]} == {
        (tasks[2]["task_id"], "CONFLICT"),
        (missing, "NOT_FOUND"),
    }
    assert second["already_completed"] == [tasks[0]["task_id"]]
    assert_ledger_balanced(db_session, enqueued=3)


def test_a_duplicate_message_is_dropped_and_never_leased_twice(
    api_client: TestClient,
    admin_headers: dict[str, str],
    worker_headers: dict[str, str],
    db_session: Session,
) -> None:
    [task_id] = enqueue(api_client, admin_headers, ["DUP-1"])
    publish_duplicate(db_session, task_id)
    assert_queue_depth(2, "demo")

    leased = lease(api_client, worker_headers, capacity=10)
    later = lease(api_client, worker_headers, capacity=10)

    assert [t["task_id"] for t in leased] == [str(task_id)] and later == []
    assert_queue_depth(0, "demo")
    assert task_row(db_session, task_id)["attempt"] == 1


def test_a_cancelled_task_is_never_handed_out_and_its_holder_gets_409(
    api_client: TestClient,
    admin_headers: dict[str, str],
    worker_headers: dict[str, str],
    db_session: Session,
) -> None:
    [held_id, waiting_id] = enqueue(api_client, admin_headers, ["X-1", "X-2"], priority=2)
    [held] = lease(api_client, worker_headers)
    assert held["task_id"] == str(held_id)
    api_client.post(f"/admin/tasks/{held_id}/cancel", headers=admin_headers)
    cancelled = api_client.post(f"/admin/tasks/{waiting_id}/cancel", headers=admin_headers)
    again = api_client.post(f"/admin/tasks/{waiting_id}/cancel", headers=admin_headers)

    late = api_client.post(f"/internal/tasks/{held_id}/complete", headers=worker_headers)

    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert again.status_code == 409
    assert late.status_code == 409
    assert lease(api_client, worker_headers) == []
    balance = assert_ledger_balanced(db_session, enqueued=2)
    assert balance["cancelled"] == 2


def test_concurrent_pollers_lease_every_task_exactly_once(
    api_client: TestClient, admin_headers: dict[str, str], db_session: Session
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from services.dispatch.broker_client import lease_from_broker

    ids = enqueue(api_client, admin_headers, [f"CC-{i:03d}" for i in range(120)])
    publish_duplicate(db_session, ids[0])  # a duplicate in the mix must not be leased twice

    def drain(worker_id: str) -> list[uuid.UUID]:
        taken: list[uuid.UUID] = []
        while tasks := lease_from_broker(
            platforms=["demo"], capacity=7, worker_id=worker_id, lease_timeout_s=300
        ):
            taken.extend(task.id for task in tasks)
        return taken

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(drain, [f"poller-{n}" for n in range(4)]))

    leased = [task_id for taken in results for task_id in taken]
    assert sorted(leased) == sorted(ids)
    assert_queue_depth(0, "demo")
    assert_ledger_balanced(db_session, enqueued=120)
