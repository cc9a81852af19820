"""Fencing: a stale or foreign ``lease_token``, or another worker, changes no lease on any route.

Each lease route (complete, fail, extend, batch complete) is tried with a token from an
earlier lease of the same task, a token of another task's lease, and the right token from
another worker. Every one is refused as a conflict, and the lease stays with its holder,
unchanged and still usable.
"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from tasks.dispatch_jobs import republish_due_retries
from tests.dispatch_helpers import (  # clean_dispatch_queues: autouse fixture
    assert_ledger_balanced,
    clean_dispatch_queues,
    enqueue,
    lease,
    platform_policy,
    task_row,
)

pytestmark = [pytest.mark.broker, pytest.mark.usefixtures(clean_dispatch_queues.__name__)]
HOLDER_ID = "worker-test-1"
OTHER_WORKER = {"X-Worker-Token": "second-worker-token", "X-Worker-ID": "worker-test-2"}
ITEM_STATUS = {"CONFLICT": 409, "NOT_FOUND": 404}
LEASE_FIELDS = ("status", "leased_by", "lease_token", "lease_expires_at", "attempt", "due_at")


def call_route(
    api_client: TestClient, route: str, task_id: str, token: int, headers: dict[str, str]
) -> tuple[int, str, str]:
    """(status, error code, message) of one lease call, the batch item's error for the batch."""
    base = "/internal/tasks"
    if route == "batch complete":
        items = [{"task_id": task_id, "lease_token": token}]
        response = api_client.post(f"{base}/complete", json={"tasks": items}, headers=headers)
        assert response.status_code == 200, response.text
        outcome = response.json()
        if not outcome["errors"]:
            assert outcome["completed"] == [task_id], outcome
            return 200, "", ""
        assert outcome["completed"] == outcome["already_completed"] == [], outcome
        [error] = outcome["errors"]
        return ITEM_STATUS.get(error["code"], 500), error["code"], error["message"]
    body: dict[str, Any] = {"lease_token": token}
    if route == "fail":
        body.update(reason="network_error", message="timed out", retry_suggested=True)
    if route == "extend":
        body["extend_s"] = 3600
    response = api_client.post(f"{base}/{task_id}/{route}", json=body, headers=headers)
    error = response.json().get("error", {}) if response.status_code >= 400 else {}
    return response.status_code, error.get("code", ""), error.get("message", "")


def leased_twice_task(
    api_client: TestClient, admin_headers: dict[str, str], worker_headers: dict[str, str]
) -> tuple[dict[str, Any], int]:
    """A task on its second lease (held by the test worker) and the first lease's token."""
    [task_id] = enqueue(api_client, admin_headers, ["FENCE-1"])
    [first] = lease(api_client, worker_headers)
    with platform_policy("demo", backoff_base_s=0):
        failed = api_client.post(
            f"/internal/tasks/{task_id}/fail",
            json={"reason": "timeout", "lease_token": first["lease_token"]},
            headers=worker_headers,
        )
    assert failed.status_code == 200 and failed.json()["should_retry"] is True, failed.text
    assert republish_due_retries() == 1
    [current] = lease(api_client, worker_headers)
    assert current["task_id"] == str(task_id) and current["attempt"] == 2
    return current, first["lease_token"]


@pytest.mark.parametrize("route", ["complete", "fail", "extend", "batch complete"])
@pytest.mark.parametrize(
    "caller", ["the holder with a stale token", "the holder with a foreign token", "another worker"]
)
def test_a_lease_call_without_the_current_lease_is_a_conflict_and_the_holder_keeps_the_lease(
    route: str,
    caller: str,
    api_client: TestClient,
    admin_headers: dict[str, str],
    worker_headers: dict[str, str],
    db_session: Session,
) -> None:
    current, stale_token = leased_twice_task(api_client, admin_headers, worker_headers)
    enqueue(api_client, admin_headers, ["FENCE-OTHER"])
    [other_task] = lease(api_client, worker_headers)
    task_id = current["task_id"]
    token, headers = {
        "the holder with a stale token": (stale_token, worker_headers),
        "the holder with a foreign token": (other_task["lease_token"], worker_headers),
        "another worker": (current["lease_token"], OTHER_WORKER),
    }[caller]
    assert token != current["lease_token"] or headers is OTHER_WORKER
    before = task_row(db_session, task_id)

    status, code, message = call_route(api_client, route, task_id, token, headers)

    assert (status, code) == (409, "CONFLICT"), message
    assert HOLDER_ID not in message  # a conflict never names the holder
    after = task_row(db_session, task_id)
    assert {f: after[f] for f in LEASE_FIELDS} == {f: before[f] for f in LEASE_FIELDS}
    assert (after["status"], after["leased_by"]) == ("leased", HOLDER_ID)
    assert after["lease_token"] == current["lease_token"]
    assert len(after["error_history"]) == 1  # only the first lease's real failure
    # The lease is intact: its holder's current token still acts on it.
    done = call_route(api_client, route, task_id, current["lease_token"], worker_headers)
    assert done[0] == 200, done
    assert_ledger_balanced(db_session, enqueued=2)


def test_an_empty_batch_complete_completes_nothing(
    api_client: TestClient,
    admin_headers: dict[str, str],
    worker_headers: dict[str, str],
    db_session: Session,
) -> None:
    ids = enqueue(api_client, admin_headers, ["HELD-A", "HELD-B"])
    assert len(lease(api_client, worker_headers, capacity=2)) == 2

    answer = api_client.post("/internal/tasks/complete", json={"tasks": []}, headers=worker_headers)

    assert answer.status_code == 200 and answer.json()["completed"] == []
    assert {task_row(db_session, task_id)["status"] for task_id in ids} == {"leased"}
