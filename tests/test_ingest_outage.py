"""A stopped PostgreSQL delays an accepted result but never loses it.

A throwaway embedded PostgreSQL (its own folder, migrated) serves one worker subprocess; it
is stopped before the result is published and started again while the task keeps retrying.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg2
import pytest

from gateway_localstack.servers import EmbeddedPostgres
from services.queues import INGEST_QUEUE
from tests.celery_workers import WorkerProcess
from tests.conftest import run_migrations
from tests.waiting import wait_for


@pytest.fixture
def outage_postgres(tmp_path: Path) -> Iterator[EmbeddedPostgres]:
    server = EmbeddedPostgres(tmp_path / "outage-pg")
    run_migrations(server.start(database="outage"))
    yield server
    server.stop()


def query_one(url: str, sql: str, *params: object) -> tuple[object, ...] | None:
    connection = psycopg2.connect(url)
    try:
        with connection, connection.cursor() as cursor:
            cursor.execute(sql, params)
            row: tuple[object, ...] | None = cursor.fetchone()
            return row
    finally:
        connection.close()


@pytest.mark.broker
def test_a_stopped_database_delays_but_never_loses_an_accepted_result(
    outage_postgres: EmbeddedPostgres, celery_worker_factory: Callable[..., WorkerProcess]
) -> None:
    from tasks.ingest import ingest_parcel_results

    url = outage_postgres.url_for("outage")
    task_id = uuid.uuid4()
    query_one(
        url,
        "INSERT INTO scrape_tasks (id, platform, state, county, parcel_id, parcel_key, status)"
        " VALUES (%s, 'qpublic', 'FL', 'dixie', '01-0813', '010813', 'running') RETURNING id",
        str(task_id),
    )
    worker = celery_worker_factory(
        [INGEST_QUEUE],
        extra_env={
            "GATEWAY_POSTGRES_URL": url,
            "GATEWAY_INGEST_RETRY_BASE_S": "0.2",
            "GATEWAY_INGEST_RETRY_MAX_S": "0.5",
        },
    )
    item = {
        "task_id": str(task_id),
        "parcel_id": "01-0813",
        "platform": "qpublic",
        "state": "FL",
        "county": "Dixie",
        "data": {"owner": "OUTAGE SURVIVOR", "total_due": "$10.00"},
        "scraped_at": datetime(2026, 11, 1, tzinfo=UTC).isoformat(),
    }

    outage_postgres.stop()
    result = ingest_parcel_results.delay([item])
    wait_for(
        lambda: worker.log().count("ingest waits") >= 3, timeout_s=60, what="three outage waits"
    )
    assert result.state != "SUCCESS"
    assert outage_postgres.start(database="outage") == url

    assert result.get(timeout=60)["inserted"] == 1
    assert query_one(url, "SELECT owner_name FROM parcels") == ("OUTAGE SURVIVOR",)
    assert query_one(url, "SELECT status FROM scrape_tasks WHERE id = %s", str(task_id)) == (
        "succeeded",
    )
    # The message was held, unacknowledged, by the worker that took it: never retried through
    # Celery (no eta parked in memory) and never handed to the queue again.
    assert "Retry in" not in worker.log()
