"""Politeness: fleet-wide start limits per platform and county, shared by HTTP leasing and
Celery runs, put-off tasks that burn no attempt and hold no worker, and a rate that drops
when a site pushes back and recovers after the cool-down."""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.orm import Session

from services.dispatch.rate_limits import Scope, ScopeLimit
from services.queues import scrape_queue_name, scrape_queue_names
from settings import get_settings
from tests.celery_workers import WorkerProcess
from tests.dispatch_helpers import (  # clean_dispatch_queues: autouse fixture
    clean_dispatch_queues,
    lease,
    queue_depth,
)
from tests.waiting import wait_for

# Every test here leases or runs through the broker: all of them run with RabbitMQ too.
pytestmark = [pytest.mark.broker, pytest.mark.usefixtures(clean_dispatch_queues.__name__)]
WorkerFactory = Callable[..., WorkerProcess]
DEMO_QUEUES = scrape_queue_names(["demo"])
# Start times are stamped by each process just after Redis granted the slot: a few
# milliseconds of scheduling may sit between the grant and the stamp.
STAMP_SLACK_S = 0.05


@pytest.fixture
def short_cooldown(monkeypatch: pytest.MonkeyPatch) -> Iterator[float]:
    monkeypatch.setenv("GATEWAY_RATE_LIMIT_COOLDOWN_S", "1.5")
    get_settings.cache_clear()
    yield 1.5
    monkeypatch.delenv("GATEWAY_RATE_LIMIT_COOLDOWN_S")
    get_settings.cache_clear()


def set_limit(
    client: TestClient, headers: dict[str, str], scope: str, per_minute: int
) -> dict[str, Any]:
    response = client.put(
        f"/admin/rate-limits/{scope}", json={"per_minute": per_minute}, headers=headers
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def limit_in_force(client: TestClient, headers: dict[str, str], scope: str) -> dict[str, Any]:
    response = client.get("/admin/rate-limits", headers=headers)
    assert response.status_code == 200, response.text
    found = [item for item in response.json()["rate_limits"] if item["scope"] == scope]
    assert len(found) == 1, response.json()
    return dict(found[0])


def enqueue_in(
    client: TestClient,
    headers: dict[str, str],
    parcel_ids: list[str],
    *,
    platform: str = "demo",
    county: str = "dixie",
    priority: int = 3,
) -> list[uuid.UUID]:
    items = [
        {
            "platform": platform,
            "state": "FL",
            "county": county,
            "parcel_id": parcel_id,
            "priority": priority,
        }
        for parcel_id in parcel_ids
    ]
    response = client.post("/admin/tasks", json={"tasks": items}, headers=headers)
    assert response.status_code == 200, response.text
    return [uuid.UUID(item["task_id"]) for item in response.json()["items"]]


def rows(session: Session, ids: list[uuid.UUID]) -> list[dict[str, Any]]:
    session.rollback()
    found = session.execute(
        text("SELECT * FROM scrape_tasks WHERE id = ANY(:ids) ORDER BY started_at"),
        {"ids": ids},
    ).mappings()
    return [dict(row) for row in found]


def by_status(session: Session, ids: list[uuid.UUID]) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = {}
    for row in rows(session, ids):
        grouped.setdefault(row["status"], []).append(row)
    return grouped


def assert_put_off_without_an_attempt(put_off: list[dict[str, Any]]) -> None:
    now = datetime.now(UTC)
    for row in put_off:
        assert row["status"] == "retry_wait"
        assert row["attempt"] == 0, row
        assert row["last_error_reason"] is None and row["error_history"] == []
        assert row["due_at"] is not None and row["due_at"] > now


def test_limits_are_data_set_listed_and_cleared_through_the_admin_api(
    api_client: TestClient, admin_headers: dict[str, str]
) -> None:
    platform_limit = set_limit(api_client, admin_headers, "qpublic", 5)
    county_limit = set_limit(api_client, admin_headers, "qpublic/St. Johns", 2)
    assert platform_limit | {"updated_at": None} == {
        "scope": "qpublic",
        "platform": "qpublic",
        "county": None,
        "per_minute": 5,
        "effective_per_minute": 5.0,
        "cut_level": 0,
        "updated_at": None,
    }
    assert county_limit["scope"] == "qpublic/stjohns"  # the county as enqueue stores it
    set_limit(api_client, admin_headers, "qpublic", 7)  # a second set replaces the first
    listed = api_client.get("/admin/rate-limits", headers=admin_headers).json()["rate_limits"]
    assert [(item["scope"], item["per_minute"]) for item in listed] == [
        ("qpublic", 7),
        ("qpublic/stjohns", 2),
    ]
    refused = api_client.put(
        "/admin/rate-limits/no_such_platform", json={"per_minute": 5}, headers=admin_headers
    )
    assert refused.status_code == 404
    zero = api_client.put(
        "/admin/rate-limits/qpublic", json={"per_minute": 0}, headers=admin_headers
    )
    assert zero.status_code == 422
    cleared = api_client.delete("/admin/rate-limits/qpublic/stjohns", headers=admin_headers)
    assert cleared.json() == {"scope": "qpublic/stjohns", "cleared": True}
    again = api_client.delete("/admin/rate-limits/qpublic/stjohns", headers=admin_headers)
    assert again.status_code == 404


def test_http_leasing_starts_one_task_a_slot_and_puts_the_rest_off_without_an_attempt(
    api_client: TestClient,
    admin_headers: dict[str, str],
    worker_headers: dict[str, str],
    db_session: Session,
) -> None:
    set_limit(api_client, admin_headers, "demo", 6)  # one start every 10 s
    demo = enqueue_in(api_client, admin_headers, [f"D-{i}" for i in range(5)])
    other = enqueue_in(api_client, admin_headers, [f"Q-{i}" for i in range(3)], platform="qpublic")

    leased = lease(api_client, worker_headers, capacity=10, platforms="demo,qpublic")

    assert sorted(task["platform"] for task in leased) == ["demo", "qpublic", "qpublic", "qpublic"]
    statuses = by_status(db_session, demo)
    assert len(statuses["leased"]) == 1 and len(statuses["retry_wait"]) == 4
    assert_put_off_without_an_attempt(statuses["retry_wait"])
    assert {row["status"] for row in rows(db_session, other)} == {"leased"}
    assert queue_depth("demo") == 0  # put-off messages were acked: they wait in the ledger
    # Work is there, the site's budget is not: the answer says when the next slot comes.
    enqueue_in(api_client, admin_headers, ["D-late"])
    response = api_client.get(
        "/internal/work", params={"platforms": "demo"}, headers=worker_headers
    )
    assert response.json()["tasks"] == []
    assert 5 <= response.json()["retry_after"] <= 10


def test_a_county_limit_holds_back_that_county_only(
    api_client: TestClient,
    admin_headers: dict[str, str],
    worker_headers: dict[str, str],
    db_session: Session,
) -> None:
    set_limit(api_client, admin_headers, "demo/dixie", 1)
    dixie = enqueue_in(api_client, admin_headers, ["X-1", "X-2", "X-3"])
    levy = enqueue_in(api_client, admin_headers, ["L-1", "L-2", "L-3"], county="levy")

    leased = lease(api_client, worker_headers, capacity=10)

    assert sorted(task["target"]["county"] for task in leased) == ["dixie", "levy", "levy", "levy"]
    assert len(by_status(db_session, dixie)["retry_wait"]) == 2
    assert {row["status"] for row in rows(db_session, levy)} == {"leased"}


def test_a_changed_limit_counts_at_once_in_this_process(
    api_client: TestClient,
    admin_headers: dict[str, str],
    worker_headers: dict[str, str],
) -> None:
    set_limit(api_client, admin_headers, "demo", 1)
    enqueue_in(api_client, admin_headers, ["C-1", "C-2"])
    assert len(lease(api_client, worker_headers, capacity=5)) == 1
    set_limit(api_client, admin_headers, "demo", 60_000)  # spaced from the last start anew
    enqueue_in(api_client, admin_headers, ["C-3"])
    assert len(lease(api_client, worker_headers, capacity=5)) == 1
    api_client.delete("/admin/rate-limits/demo", headers=admin_headers)
    enqueue_in(api_client, admin_headers, ["C-4", "C-5"])
    assert len(lease(api_client, worker_headers, capacity=5)) == 2


def test_a_blocked_report_halves_the_rate_until_the_cooldown_restores_it(
    api_client: TestClient,
    admin_headers: dict[str, str],
    worker_headers: dict[str, str],
    short_cooldown: float,
) -> None:
    from services.dispatch.politeness import start_budget

    set_limit(api_client, admin_headers, "demo", 120)
    set_limit(api_client, admin_headers, "qpublic", 120)
    enqueue_in(api_client, admin_headers, ["B-1"])
    [task] = lease(api_client, worker_headers)
    failed = api_client.post(
        f"/internal/tasks/{task['task_id']}/fail",
        json={"reason": "blocked", "message": "403 from the county site"},
        headers=worker_headers,
    )
    assert failed.status_code == 200, failed.text

    cut = limit_in_force(api_client, admin_headers, "demo")
    assert (cut["per_minute"], cut["effective_per_minute"], cut["cut_level"]) == (120, 60.0, 1)
    assert limit_in_force(api_client, admin_headers, "qpublic")["cut_level"] == 0
    metrics = api_client.get("/metrics").text
    assert 'gateway_rate_limit_per_minute{county="",platform="demo"} 60.0' in metrics
    # The spacing doubled: a start now, the next one second later (not half a second).
    budget = start_budget()
    demo = ScopeLimit(Scope("demo"), 120)
    wait_for(lambda: budget.take_start([demo]) == 0, timeout_s=2, what="a demo slot")
    assert 0.9 <= budget.take_start([demo]) <= 1.0

    restored = wait_for(
        lambda: (
            (item := limit_in_force(api_client, admin_headers, "demo"))["cut_level"] == 0 and item
        ),
        timeout_s=short_cooldown + 2,
        what="the cool-down to lift the cut",
    )
    assert restored["effective_per_minute"] == 120.0


def test_pushback_deepens_the_cut_once_per_incident_and_lifts_it_a_level_a_cooldown(
    short_cooldown: float,
) -> None:
    from services.dispatch.politeness import start_budget

    budget = start_budget()
    county = ScopeLimit(Scope("demo", "dixie"), 64)
    assert budget.report_pushback(county) == 1
    assert budget.report_pushback(county) == 1  # the same incident: every task refused at once
    [rate] = budget.read_rates([county])
    assert rate.per_minute == 32
    wait_for(
        lambda: budget.read_rates([county])[0].cut_level == 0,
        timeout_s=short_cooldown + 2,
        what="the cut to lift",
    )


def test_a_retry_after_the_worker_reports_pauses_the_scope(
    api_client: TestClient,
    admin_headers: dict[str, str],
    worker_headers: dict[str, str],
    db_session: Session,
) -> None:
    set_limit(api_client, admin_headers, "demo/dixie", 600)
    enqueue_in(api_client, admin_headers, ["R-1"])
    [task] = lease(api_client, worker_headers)
    api_client.post(
        f"/internal/tasks/{task['task_id']}/fail",
        json={"reason": "platform_down", "retry_after_s": 120},
        headers=worker_headers,
    )
    later = enqueue_in(api_client, admin_headers, ["R-2"])
    assert lease(api_client, worker_headers) == []
    [row] = rows(db_session, later)
    waited_s = (row["due_at"] - datetime.now(UTC)).total_seconds()
    assert 110 <= waited_s <= 120
    assert limit_in_force(api_client, admin_headers, "demo/dixie")["cut_level"] == 1


def test_an_over_budget_celery_task_burns_no_attempt_and_frees_its_worker(
    api_client: TestClient,
    admin_headers: dict[str, str],
    db_session: Session,
    celery_worker_factory: WorkerFactory,
) -> None:
    set_limit(api_client, admin_headers, "demo/dixie", 1)
    dixie = enqueue_in(api_client, admin_headers, ["K-1", "K-2", "K-3"])
    levy = enqueue_in(api_client, admin_headers, ["K-4"], county="levy")
    worker = celery_worker_factory(DEMO_QUEUES, concurrency=1)

    # One process slot: the levy task behind the put-off dixie ones runs all the same.
    wait_for(
        lambda: rows(db_session, levy)[0]["status"] == "running",
        timeout_s=30,
        what="the levy task to run",
    )
    statuses = by_status(db_session, dixie)
    assert len(statuses["running"]) == 1 and statuses["running"][0]["attempt"] == 1
    assert len(statuses["retry_wait"]) == 2
    assert_put_off_without_an_attempt(statuses["retry_wait"])
    assert "over its start budget" in worker.log()


def test_a_changed_limit_reaches_a_running_celery_worker_without_a_restart(
    api_client: TestClient,
    admin_headers: dict[str, str],
    db_session: Session,
    celery_worker_factory: WorkerFactory,
) -> None:
    refresh_s = 0.2
    set_limit(api_client, admin_headers, "demo", 1)
    celery_worker_factory(
        DEMO_QUEUES, concurrency=1, extra_env={"GATEWAY_RATE_LIMIT_REFRESH_S": str(refresh_s)}
    )
    first = enqueue_in(api_client, admin_headers, ["N-1", "N-2"])
    wait_for(
        lambda: sorted(r["status"] for r in rows(db_session, first)) == ["retry_wait", "running"],
        timeout_s=30,
        what="one start and one put off at 1/min",
    )
    set_limit(api_client, admin_headers, "demo", 60_000)
    # The promise is "within the refresh interval": nothing to observe until it has passed.
    time.sleep(refresh_s * 2)
    later = enqueue_in(api_client, admin_headers, ["N-3", "N-4", "N-5"])
    wait_for(
        lambda: {r["status"] for r in rows(db_session, later)} == {"running"},
        timeout_s=30,
        what="the raised limit to let every new task start",
    )


def test_no_more_than_the_limit_start_across_http_and_celery_workers_together(
    api_client: TestClient,
    admin_headers: dict[str, str],
    worker_headers: dict[str, str],
    db_session: Session,
    celery_worker_factory: WorkerFactory,
) -> None:
    from services.dispatch.broker_client import lease_from_broker
    from tasks.dispatch_jobs import republish_due_retries

    per_minute = 120
    spacing_s = 60 / per_minute
    set_limit(api_client, admin_headers, "demo", per_minute)
    # Both kinds surely start some: only HTTP leasing reads the p1 queue, and the Celery
    # workers, blocked on p3, take each p3 message the moment it is published.
    for _ in range(2):
        celery_worker_factory([scrape_queue_name("demo", 3)], concurrency=2)
    demo = [
        *enqueue_in(api_client, admin_headers, [f"F-{i:02d}" for i in range(8)], priority=1),
        *enqueue_in(api_client, admin_headers, [f"F-{i:02d}" for i in range(8, 16)]),
    ]
    other = enqueue_in(
        api_client, admin_headers, [f"G-{i:02d}" for i in range(6)], platform="qpublic"
    )
    done = threading.Event()

    def poll_http(worker_id: str) -> None:
        while not done.wait(0.05):
            lease_from_broker(
                platforms=["demo", "qpublic"], capacity=2, worker_id=worker_id, lease_timeout_s=300
            )

    def republish() -> None:
        while not done.wait(0.1):  # the beat's job, at a test's pace
            republish_due_retries()

    threads = [threading.Thread(target=poll_http, args=(f"http-{n}",)) for n in range(3)]
    threads.append(threading.Thread(target=republish))
    for thread in threads:
        thread.start()
    try:
        started = wait_for(
            lambda: (
                (found := rows(db_session, demo))
                and all(row["started_at"] is not None for row in found)
                and found
            ),
            timeout_s=60,
            what="every demo task to start",
        )
    finally:
        done.set()
        for thread in threads:
            thread.join(timeout=10)

    started = rows(db_session, demo)
    starts = [row["started_at"] for row in started]
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(starts)]
    assert min(gaps) >= spacing_s - STAMP_SLACK_S, gaps
    assert {row["attempt"] for row in started} == {1}  # put off many times, never an attempt
    kinds = {"http" if row["status"] == "leased" else "celery" for row in started}
    assert kinds == {"http", "celery"}, [row["leased_by"] for row in started]
    # The unlimited platform was leased at once, not at the limited one's pace.
    other_starts = sorted(row["started_at"] for row in rows(db_session, other))
    assert len(other_starts) == 6
    assert (other_starts[-1] - starts[0]).total_seconds() < 3
