"""Helpers for the dispatch tests: enqueue through the API, read queues, check the ledger."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, cast

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.orm import Session

from services.dispatch.ledger_stats import ledger_balance
from services.dispatch.outcome_metrics import DUPLICATES_DROPPED_KEY, DeliveryPath
from services.queues import scrape_queue_name


def enqueue(
    api_client: httpx.Client,
    admin_headers: dict[str, str],
    parcel_ids: list[str],
    *,
    platform: str = "demo",
    priority: int | None = None,
) -> list[uuid.UUID]:
    items: list[dict[str, Any]] = [
        {"platform": platform, "state": "FL", "county": "dixie", "parcel_id": parcel_id}
        for parcel_id in parcel_ids
    ]
    if priority is not None:
        for item in items:
            item["priority"] = priority
    response = api_client.post("/admin/tasks", json={"tasks": items}, headers=admin_headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["enqueued"] == len(parcel_ids), body
    return [uuid.UUID(item["task_id"]) for item in body["items"]]


def queue_depth(platform: str, priority: int = 3, *, queue: str | None = None) -> int:
    from services.dispatch.broker_client import queue_for
    from tasks.app import app

    name = queue or scrape_queue_name(platform, priority)
    with app.connection_for_write() as connection:
        channel = connection.channel()
        try:
            _, count, _ = queue_for(name).bind(channel).queue_declare()
        finally:
            channel.close()
    return int(count)


def task_row(session: Session, task_id: uuid.UUID) -> dict[str, Any]:
    session.rollback()  # see other connections' commits
    row = (
        session.execute(text("SELECT * FROM scrape_tasks WHERE id = :id"), {"id": task_id})
        .mappings()
        .one()
    )
    return dict(row)


def assert_ledger_balanced(session: Session, *, enqueued: int) -> dict[str, int]:
    """The invariant: enqueued = succeeded + dead + cancelled + active."""
    session.rollback()
    balance = ledger_balance(session)
    assert balance["enqueued"] == enqueued, balance
    parts = balance["succeeded"] + balance["dead"] + balance["cancelled"] + balance["active"]
    assert parts == enqueued, balance
    return balance


def lease(
    api_client: TestClient, headers: dict[str, str], *, capacity: int = 1, **params: Any
) -> list[dict[str, Any]]:
    response = api_client.get(
        "/internal/work",
        params={"platforms": "demo", "capacity": capacity, **params},
        headers=headers,
    )
    assert response.status_code == 200, response.text
    tasks: list[dict[str, Any]] = response.json()["tasks"]
    return tasks


@contextmanager
def platform_policy(
    platform: str, *, backoff_base_s: int | None = None, max_retries: int | None = None
) -> Iterator[None]:
    """Override a seed platform's retry policy for one test (the platforms table is kept)."""
    from db.session import get_engine

    statement = text(
        "UPDATE platforms SET retry_backoff_base_s = :base, max_retries = :retries"
        " WHERE name = :name"
    )
    with get_engine().begin() as connection:
        connection.execute(
            statement, {"base": backoff_base_s, "retries": max_retries, "name": platform}
        )
    try:
        yield
    finally:
        with get_engine().begin() as connection:
            connection.execute(statement, {"base": None, "retries": None, "name": platform})


@contextmanager
def platform_disabled(platform: str) -> Iterator[None]:
    """Disable a seed platform for one test (the platforms table is kept between tests)."""
    from db.session import get_engine

    statement = text("UPDATE platforms SET is_enabled = :enabled WHERE name = :name")
    with get_engine().begin() as connection:
        connection.execute(statement, {"enabled": False, "name": platform})
    try:
        yield
    finally:
        with get_engine().begin() as connection:
            connection.execute(statement, {"enabled": True, "name": platform})


def expire_leases() -> None:
    """Time passes for the held tasks: every lease (HTTP or run lease) is now past its expiry."""
    from db.session import get_engine

    with get_engine().begin() as connection:
        connection.execute(
            text(
                "UPDATE scrape_tasks SET lease_expires_at = now() - interval '1 second'"
                " WHERE status IN ('leased', 'running')"
            )
        )


def silence_workers(seconds: int) -> None:
    """Time passes for the registry: every worker's last heartbeat is ``seconds`` older."""
    from db.session import get_engine

    with get_engine().begin() as connection:
        connection.execute(
            text(
                "UPDATE workers"
                " SET last_heartbeat_at = last_heartbeat_at - make_interval(secs => :s)"
            ),
            {"s": seconds},
        )


@pytest.fixture
def clean_dispatch_queues() -> Iterator[None]:
    """Empty the scrape and ingest queues first: a RabbitMQ broker is not flushed between tests."""
    from services.dispatch.broker_client import queue_for
    from services.queues import INGEST_QUEUE, scrape_queue_names
    from tasks.app import app

    with app.connection_for_write() as connection:
        channel = connection.channel()
        try:
            for name in [*scrape_queue_names(["demo", "qpublic"]), INGEST_QUEUE]:
                queue = queue_for(name).bind(channel)
                queue.declare()
                queue.purge()
        finally:
            channel.close()
    yield


def duplicates_dropped(path: DeliveryPath) -> int:
    """The fleet-wide count of scrape messages dropped as duplicates on ``path``."""
    from services.metrics_redis import metrics_redis

    return int(metrics_redis().hget(DUPLICATES_DROPPED_KEY, path.value) or 0)


def publish_duplicate(session: Session, task_id: uuid.UUID) -> None:
    """A second message for the same ledger row, as a redelivery or a re-publish race makes."""
    from db.models import ScrapeTask
    from services.dispatch.broker_client import publish_scrape_messages
    from services.dispatch.envelopes import scrape_message

    task = session.get(ScrapeTask, task_id)
    assert task is not None
    publish_scrape_messages([scrape_message(task)])


def assert_queue_depth(expected: int, platform: str = "demo", priority: int = 3) -> None:
    """Polls briefly: on RabbitMQ a publish is routed asynchronously to the count we read."""
    from tests.waiting import wait_for

    try:
        wait_for(lambda: queue_depth(platform, priority) == expected, timeout_s=3)
    except AssertionError:
        assert queue_depth(platform, priority) == expected


def assert_succeeded_tasks_kept_their_results(session: Session) -> None:
    """Accepted means kept: a task is succeeded only if its result is a parcel snapshot or an
    ingest reject (tasks finished by an HTTP ``complete`` are the worker's word, not checked)."""
    session.rollback()
    orphans = session.execute(
        text(
            "SELECT t.id FROM scrape_tasks t WHERE t.status = 'succeeded'"
            " AND t.leased_by LIKE '%@%'"  # run by a Celery node (named name@host)
            " AND NOT EXISTS (SELECT 1 FROM parcel_snapshots s WHERE s.task_id = t.id)"
            " AND NOT EXISTS (SELECT 1 FROM ingest_rejects r WHERE r.task_id = t.id)"
        )
    ).all()
    assert orphans == [], f"succeeded without a parcel or reject row: {orphans}"


def poll_with_every_broker_connection_held(
    api_client: TestClient, worker_headers: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> Any:
    """``GET /internal/work`` while the test holds every pooled broker connection."""
    from services.dispatch import broker_client as dispatch_broker
    from tasks.app import app

    monkeypatch.setattr(dispatch_broker, "POOL_ACQUIRE_TIMEOUT_S", 0.2)
    held = [app.pool.acquire(block=True, timeout=1) for _ in range(app.pool.limit)]
    try:
        return api_client.get(
            "/internal/work", params={"platforms": "demo"}, headers=worker_headers
        )
    finally:
        for connection in held:
            connection.release()


def age_unacked_past_visibility() -> int:
    """Redis only: make every message in kombu's unacked index look taken longer ago than the
    visibility timeout (so kombu's restore brings it back); returns how many there were."""
    import time

    import redis

    from settings import get_settings

    settings = get_settings()
    broker = redis.Redis.from_url(settings.celery_broker_url)
    try:
        tags = [cast(bytes, tag) for tag in broker.zrange("unacked_index", 0, -1)]
        if tags:
            overdue = time.time() - settings.visibility_timeout_s - 60
            broker.zadd("unacked_index", dict.fromkeys(tags, overdue))
        return len(tags)
    finally:
        broker.close()
