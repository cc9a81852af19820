"""HTTP workers under faults: dropped broker connections, a database outage mid-lease,
workers that vanish, expired leases, stale heartbeats; commands and metrics."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from kombu import Message
from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from db.session import session_scope
from services.dispatch import lease_loop
from services.dispatch.reaper import reap_expired_leases, reap_stale_workers
from tasks.dispatch_jobs import republish_due_retries
from tests.dispatch_helpers import (
    age_unacked_past_visibility,  # clean_dispatch_queues: autouse fixture
    assert_ledger_balanced,
    assert_queue_depth,
    clean_dispatch_queues,
    enqueue,
    expire_leases,
    lease,
    platform_disabled,
    platform_policy,
    silence_workers,
    task_row,
)

pytestmark = [pytest.mark.broker, pytest.mark.usefixtures(clean_dispatch_queues.__name__)]
OTHER_WORKER = {"X-Worker-Token": "second-worker-token", "X-Worker-ID": "worker-test-2"}


def test_a_broker_connection_dropped_between_lease_and_ack_loses_nothing(
    api_client: TestClient,
    admin_headers: dict[str, str],
    worker_headers: dict[str, str],
    db_session: Session,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ids = enqueue(api_client, admin_headers, ["DROP-1", "DROP-2"])

    def drop_connection(
        messages: Sequence[Message], errors: tuple[type[BaseException], ...]
    ) -> bool:
        try:
            raise ConnectionResetError("broker connection reset before the ack")
        except errors as exc:  # handled as a real drop inside message.ack() is
            lease_loop.logger.warning("simulated: %s", exc)
            return False

    monkeypatch.setattr(lease_loop, "ack_messages", drop_connection)
    tasks = lease(api_client, worker_headers, capacity=5)
    monkeypatch.undo()

    # The leases stand and are handed out; the unacked messages came back to the queue ...
    assert sorted(t["task_id"] for t in tasks) == sorted(str(i) for i in ids)
    assert {task_row(db_session, i)["status"] for i in ids} == {"leased"}
    assert_queue_depth(2, "demo")
    # ... as duplicates, which are dropped, never handed to a second worker.
    assert lease(api_client, OTHER_WORKER, capacity=5) == []
    assert_queue_depth(0, "demo")
    for task in tasks:
        done = api_client.post(
            f"/internal/tasks/{task['task_id']}/complete",
            json={"lease_token": task["lease_token"]},
            headers=worker_headers,
        )
        assert done.status_code == 200
    assert_ledger_balanced(db_session, enqueued=2)


def test_a_database_outage_after_taking_messages_puts_them_back(
    api_client: TestClient,
    admin_headers: dict[str, str],
    worker_headers: dict[str, str],
    db_session: Session,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    [task_id] = enqueue(api_client, admin_headers, ["DB-1"])

    def database_down(*_: object, **__: object) -> list[object]:
        raise OperationalError("UPDATE scrape_tasks", {}, Exception("server closed"))

    monkeypatch.setattr(lease_loop, "claim_leases", database_down)
    failed = api_client.get("/internal/work", params={"platforms": "demo"}, headers=worker_headers)
    monkeypatch.undo()

    assert failed.status_code == 503
    assert_queue_depth(1, "demo")
    [task] = lease(api_client, worker_headers)
    assert task["task_id"] == str(task_id) and task["attempt"] == 1
    assert_ledger_balanced(db_session, enqueued=1)


def test_a_worker_that_vanishes_has_its_task_retried_after_the_lease_expires(
    api_client: TestClient,
    admin_headers: dict[str, str],
    worker_headers: dict[str, str],
    db_session: Session,
) -> None:
    [task_id] = enqueue(api_client, admin_headers, ["GONE-1"])
    [task] = lease(api_client, worker_headers)  # ... and the worker is never heard of again
    with platform_policy("demo", backoff_base_s=0), session_scope() as session:
        assert reap_expired_leases(session, now=datetime.now(UTC)) == 0
        expire_leases()
        assert reap_expired_leases(session, now=datetime.now(UTC)) == 1
    row = task_row(db_session, task_id)
    assert (row["status"], row["last_error_reason"]) == ("retry_wait", "lease_expired")
    assert republish_due_retries() == 1

    [again] = lease(api_client, OTHER_WORKER)
    late = api_client.post(
        f"/internal/tasks/{task_id}/complete",
        json={"lease_token": task["lease_token"]},
        headers=worker_headers,
    )

    assert again["task_id"] == str(task_id) and again["attempt"] == 2
    assert late.status_code == 409
    assert_ledger_balanced(db_session, enqueued=1)


def test_a_worker_whose_heartbeat_goes_stale_loses_its_leases_at_once(
    api_client: TestClient,
    admin_headers: dict[str, str],
    worker_headers: dict[str, str],
    db_session: Session,
) -> None:
    enqueue(api_client, admin_headers, ["HB-1", "HB-2"])
    beat = api_client.post(
        "/internal/heartbeat", json={"platforms": ["demo"]}, headers=worker_headers
    )
    assert beat.json() == {"acknowledged": True, "commands": []}
    tasks = lease(api_client, worker_headers, capacity=2)

    with platform_policy("demo", backoff_base_s=0), session_scope() as session:
        assert reap_stale_workers(session, now=datetime.now(UTC), stale_s=300) == 0
        # Silent longer than the threshold; the leases themselves are far from expiry.
        silence_workers(301)
        assert reap_expired_leases(session, now=datetime.now(UTC)) == 0
        assert reap_stale_workers(session, now=datetime.now(UTC), stale_s=300) == 2
    for task in tasks:
        row = task_row(db_session, task["task_id"])
        assert (row["status"], row["last_error_reason"]) == ("retry_wait", "worker_stale")
    stale = api_client.get("/admin/workers", params={"state": "stale"}, headers=admin_headers)
    assert stale.status_code == 200
    assert republish_due_retries() == 2
    assert len(lease(api_client, OTHER_WORKER, capacity=5)) == 2
    assert_ledger_balanced(db_session, enqueued=2)


def test_queued_commands_reach_the_worker_and_pause_stops_leasing(
    api_client: TestClient, admin_headers: dict[str, str], worker_headers: dict[str, str]
) -> None:
    enqueue(api_client, admin_headers, ["PAUSE-1"])
    api_client.post("/internal/heartbeat", json={"active_tasks": 0}, headers=worker_headers)
    url = "/admin/workers/worker-test-1/commands"

    paused = api_client.post(url, json={"command": "pause"}, headers=admin_headers)
    assert paused.status_code == 201
    assert lease(api_client, worker_headers) == []
    beat = api_client.post("/internal/heartbeat", json={}, headers=worker_headers).json()
    assert beat["commands"] == ["pause"]
    api_client.post(url, json={"command": "resume"}, headers=admin_headers)

    assert len(lease(api_client, worker_headers)) == 1
    assert api_client.post("/internal/heartbeat", json={}, headers=worker_headers).json()[
        "commands"
    ] == ["resume"]
    workers = api_client.get("/admin/workers", headers=admin_headers).json()["workers"]
    assert [(w["worker_id"], w["state"], w["current_leases"]) for w in workers] == [
        ("worker-test-1", "alive", 1)
    ]
    unknown = api_client.post(
        "/admin/workers/nobody/commands", json={"command": "pause"}, headers=admin_headers
    )
    assert unknown.status_code == 404


def test_a_heartbeat_reporting_active_tasks_extends_the_workers_leases(
    api_client: TestClient,
    admin_headers: dict[str, str],
    worker_headers: dict[str, str],
    db_session: Session,
) -> None:
    [task_id] = enqueue(api_client, admin_headers, ["KEEP-1"])
    [task] = lease(api_client, worker_headers)

    db_session.execute(
        text("UPDATE scrape_tasks SET lease_expires_at = now() + interval '5 seconds'")
    )
    db_session.commit()

    api_client.post("/internal/heartbeat", json={"active_tasks": 0}, headers=worker_headers)
    unchanged = task_row(db_session, task_id)["lease_expires_at"]
    api_client.post("/internal/heartbeat", json={"active_tasks": 1}, headers=worker_headers)

    expires = task_row(db_session, task_id)["lease_expires_at"]
    assert unchanged < datetime.now(UTC) + timedelta(seconds=10)
    assert expires > datetime.now(UTC) + timedelta(seconds=250)
    assert task["task_id"] == str(task_id)


def test_a_heartbeat_naming_its_tasks_keeps_only_those_leases_alive(
    api_client: TestClient,
    admin_headers: dict[str, str],
    worker_headers: dict[str, str],
    db_session: Session,
) -> None:
    held_id, lost_id = enqueue(api_client, admin_headers, ["HELD-1", "LOST-1"])
    assert len(lease(api_client, worker_headers, capacity=2)) == 2  # one answer "lost" in transit
    db_session.execute(
        text("UPDATE scrape_tasks SET lease_expires_at = now() + interval '5 seconds'")
    )
    db_session.commit()

    beat = {"active_tasks": 1, "task_ids": [str(held_id)]}
    assert (
        api_client.post("/internal/heartbeat", json=beat, headers=worker_headers).status_code == 200
    )

    soon = datetime.now(UTC) + timedelta(seconds=10)
    assert task_row(db_session, held_id)["lease_expires_at"] > soon + timedelta(seconds=200)
    assert task_row(db_session, lost_id)["lease_expires_at"] < soon  # runs out, is retried


def test_metrics_report_queue_depth_leases_dead_letters_and_workers(
    api_client: TestClient, admin_headers: dict[str, str], worker_headers: dict[str, str]
) -> None:
    enqueue(api_client, admin_headers, ["M-1", "M-2", "M-3"])
    enqueue(api_client, admin_headers, ["M-4"], priority=1)
    api_client.post("/internal/heartbeat", json={}, headers=worker_headers)
    [leased] = lease(api_client, worker_headers)
    [doomed] = lease(api_client, worker_headers)
    api_client.post(
        f"/internal/tasks/{doomed['task_id']}/fail",
        json={"reason": "format_changed", "retry_suggested": False},
        headers=worker_headers,
    )

    text_body = api_client.get("/metrics").text

    assert 'gateway_queue_depth{platform="demo",priority="3"} 2.0' in text_body
    assert 'gateway_tasks_in_progress{kind="http",platform="demo"} 1.0' in text_body
    assert 'gateway_dead_letters{platform="demo",reason="format_changed"} 1.0' in text_body
    assert 'gateway_workers{state="alive"} 1.0' in text_body
    assert leased["priority"] == 1


def test_metrics_report_zero_for_every_enabled_platform_once_its_queues_drain(
    api_client: TestClient, admin_headers: dict[str, str], worker_headers: dict[str, str]
) -> None:
    enqueue(api_client, admin_headers, ["Z-1"])
    [task] = lease(api_client, worker_headers)
    completed = api_client.post(
        f"/internal/tasks/{task['task_id']}/complete",
        json={"lease_token": task["lease_token"]},
        headers=worker_headers,
    )
    assert completed.status_code == 200, completed.text

    with platform_disabled("gis"):
        text_body = api_client.get("/metrics").text

    for platform in ("demo", "qpublic"):
        for priority in (1, 2, 3, 4):
            series = f'gateway_queue_depth{{platform="{platform}",priority="{priority}"}} 0.0'
            assert series in text_body
        for kind in ("http", "celery"):
            series = f'gateway_tasks_in_progress{{kind="{kind}",platform="{platform}"}} 0.0'
            assert series in text_body
        assert f'gateway_retry_wait_tasks{{platform="{platform}"}} 0.0' in text_body
        assert f'gateway_dead_letters{{platform="{platform}",reason="timeout"}} 0.0' in text_body
    assert 'platform="gis"' not in text_body  # a disabled platform reports nothing


_TAKE_AND_DIE = """
import os, signal
from tasks.app import app
from services.dispatch.broker_client import queue_for

connection = app.connection_for_write()
channel = connection.channel()
message = queue_for("scrape.demo.p3").bind(channel).get(no_ack=False)
assert message is not None
os.kill(os.getpid(), signal.SIGKILL)  # dies holding the message, before any lease is written
"""


def test_an_api_process_killed_between_taking_a_message_and_leasing_loses_nothing(
    api_client: TestClient,
    admin_headers: dict[str, str],
    worker_headers: dict[str, str],
    db_session: Session,
) -> None:
    import subprocess
    import sys

    from tasks.dispatch_jobs import republish_vanished
    from tests.celery_workers import REPO_ROOT

    [task_id] = enqueue(api_client, admin_headers, ["CRASH-1"])
    crashed = subprocess.run([sys.executable, "-c", _TAKE_AND_DIE], cwd=REPO_ROOT, check=False)
    assert crashed.returncode == -9

    # Redis keeps the message in kombu's unacked hash until the visibility timeout; RabbitMQ
    # requeues it at once. Either way the ledger row is still queued, and the re-publisher
    # makes sure a message for it is in the queue.
    republish_vanished(grace_s=0)
    [task] = lease(api_client, worker_headers, capacity=5)

    assert task["task_id"] == str(task_id) and task["attempt"] == 1
    assert lease(api_client, OTHER_WORKER, capacity=5) == []
    assert_ledger_balanced(db_session, enqueued=1)


def test_on_redis_a_message_unacked_past_the_visibility_timeout_is_restored_by_the_job(
    api_client: TestClient,
    admin_headers: dict[str, str],
    worker_headers: dict[str, str],
    db_session: Session,
) -> None:
    import subprocess
    import sys

    from settings import get_settings
    from tasks.dispatch_jobs import republish_vanished
    from tests.celery_workers import REPO_ROOT

    settings = get_settings()
    if not settings.is_redis_broker:
        pytest.skip("kombu's unacked hash exists only on the Redis transport")
    [task_id] = enqueue(api_client, admin_headers, ["UNACKED-1"])
    subprocess.run([sys.executable, "-c", _TAKE_AND_DIE], cwd=REPO_ROOT, check=False)
    assert age_unacked_past_visibility() == 1

    # A large grace: only kombu's own restore can bring the message back here.
    assert republish_vanished(grace_s=3600) == 0

    assert_queue_depth(1, "demo")
    [task] = lease(api_client, worker_headers)
    assert task["task_id"] == str(task_id)
