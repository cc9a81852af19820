"""A real Celery worker process runs a task through the broker and the database."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from services.queues import MAINTENANCE_QUEUE
from tests.celery_workers import WorkerProcess


@pytest.mark.broker
def test_a_real_worker_runs_a_task_against_the_database(
    celery_worker_factory: Callable[..., WorkerProcess],
) -> None:
    from tasks.maintenance import ping

    celery_worker_factory([MAINTENANCE_QUEUE])

    result = ping.delay().get(timeout=30)

    assert result == {"pong": True, "database": True}


@pytest.mark.broker
def test_the_request_id_travels_from_publisher_into_the_task(
    celery_worker_factory: Callable[..., WorkerProcess],
) -> None:
    from observability.request_context import set_request_id
    from tasks.maintenance import echo_request_id

    celery_worker_factory([MAINTENANCE_QUEUE])
    set_request_id("req-abc123")
    try:
        seen = echo_request_id.delay().get(timeout=30)
    finally:
        set_request_id(None)

    assert seen == "req-abc123"
