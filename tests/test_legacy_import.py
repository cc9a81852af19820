"""``python -m cli import-legacy`` against a real Redis and a real PostgreSQL loaded in the
original gateway's layout: every queued task enqueued once, every parcel ingested once, a
second run changes nothing."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg2
import pytest
import redis
from click.testing import CliRunner
from psycopg2.extras import Json
from sqlalchemy import text
from sqlalchemy.orm import Session

from cli.main import main
from tests.dispatch_helpers import assert_ledger_balanced, queue_depth
from tests.servers import TestServers, create_database, drop_database, replace_database

pytestmark = pytest.mark.broker

LEGACY_PLATFORMS = ["beacon", "qpublic", "tyler", "floridatax"]
# The original's migrations/001_parcels.sql.
ORIGINAL_PARCELS_DDL = """
CREATE TABLE IF NOT EXISTS parcels (
    id SERIAL PRIMARY KEY,
    parcel_id VARCHAR(255) NOT NULL,
    platform VARCHAR(64) NOT NULL,
    state VARCHAR(8) NOT NULL,
    county VARCHAR(255) NOT NULL,
    data JSONB NOT NULL,
    scraped_at TIMESTAMPTZ NOT NULL,
    worker_id VARCHAR(255),
    created_at TIMESTAMPTZ DEFAULT NOW()
);
CREATE UNIQUE INDEX IF NOT EXISTS _parcel_platform_uc
    ON parcels (parcel_id, platform, state, county);
CREATE INDEX IF NOT EXISTS idx_parcels_parcel_id ON parcels (parcel_id);
CREATE INDEX IF NOT EXISTS idx_parcels_platform ON parcels (platform);
"""


def go_task(platform: str, parcel_id: str, county: str, priority: int) -> str:
    """As the Go gateway's WorkTask struct serialises it."""
    return json.dumps({
        "task_id": str(uuid.uuid4()), "type": "scrape", "platform": platform,
        "target": {"parcel_id": parcel_id, "state": "FL", "county": county,
                   "url": f"https://qpublic.schneidercorp.com/?KeyValue={parcel_id}"},
        "priority": priority, "created_at": "2026-11-20T10:00:00Z",
    })  # fmt: skip


def py_task(platform: str, parcel_id: str, county: str) -> str:
    """As the Python gateway's WorkTask model: naive created_at, proxy, free target dict."""
    return json.dumps({
        "task_id": f"t-{parcel_id}", "type": "scrape", "platform": platform,
        "target": {"parcel_id": parcel_id, "state": "FL", "county": county},
        "priority": 3, "proxy": None, "created_at": "2026-11-26T07:27:48.693643",
    })  # fmt: skip


@pytest.fixture
def legacy_redis_url(test_servers: TestServers) -> Iterator[str]:
    """Another database of the test Redis, loaded as the original gateway left it."""
    parts = urlsplit(test_servers.redis_url)
    current = int(parts.path.strip("/") or 0)
    url = urlunsplit(parts._replace(path=f"/{(current + 8) % 16}"))
    client = redis.Redis.from_url(url)
    client.flushdb()
    # LPUSH, as the original's producer did: the rightmost item is the oldest.
    client.lpush("queue:beacon:p1", go_task("beacon", "35-08-13-0000-3900-0200", "Dixie", 1))
    client.lpush("queue:beacon:p1", go_task("beacon", "010813-00003634-1100", "Dixie", 1))
    client.lpush("queue:qpublic:p3", py_task("qpublic", "1-32-4N-4W-0000-00322-0300", "Gadsden"))
    client.lpush("queue:qpublic:p3", "{not json")
    client.lpush("queue:qpublic:p3", py_task("qpublic", "R12074-000", "Columbia"))
    # The same parcel again in its other spelling: the enqueue dedup takes it once.
    client.lpush("queue:qpublic:p3", py_task("qpublic", "1324N4W0000003220300", "Gadsden"))
    client.lpush("queue:custom_gis:p2", go_task("custom_gis", "0002141099", "Sarasota", 2))
    client.rpush("processing:worker-7", json.dumps({  # the spec's flat layout
        "task_id": "t-9", "platform": "tyler", "state": "TX", "county": "Harris",
        "parcel_id": "0021190000005", "priority": 2, "retry_count": 1,
    }))  # fmt: skip
    client.rpush("processing:unknown", go_task("floridatax", "1805210000005700", "Union", 3))
    client.set("processing:some-task-id", "{}")  # the spec's in-flight marker: not a list
    yield url
    client.flushdb()
    client.close()


@pytest.fixture
def legacy_postgres_url(test_servers: TestServers) -> Iterator[str]:
    """A PostgreSQL database in the original's layout, with rows as the fleet sent them."""
    admin_url, _ = test_servers.admin_database
    name = f"taxlien_legacy_{uuid.uuid4().hex[:8]}"
    create_database(admin_url, name)
    url = replace_database(admin_url, name)
    rows: list[tuple[Any, ...]] = [
        ("35-08-13-0000-3900-0200", "qpublic", "FL", "Dixie",
         {"owner": "\n SMITH JOHN \n", "total_due_amount": "$1,234.56",
          "last_year_due_amount": "$1,180.22"}, "2026-11-20T12:00:00Z"),
        ("16-31-16-00000-140-0100", "beacon", "FL", "Pinellas",
         {"owner": "GARCIA MARIA L", "total_due_amount": "$2,345.67",
          "market_value": "$165,500", "image_urls": ["https://a.invalid/1.jpg"]},
         "2026-11-21T12:00:00Z"),
        ("123-45-678", "bid4assets", "AZ", "Maricopa",
         {"property_address": "2207 W ROMA AVE", "tax_amount_due": "$3,210.45",
          "document_urls": []}, "2026-11-22T12:00:00Z"),
        ("0021190000005", "tyler", "TX", "Harris",
         {"owner": "JOHNSON ROBERT", "has_delinquency": True,
          "delinquent_amount": "$5,412.30"}, "2026-11-23T12:00:00Z"),
        # Go stored its zero time when a worker sent no scraped_at: created_at stands in.
        ("R12074-000", "qpublic", "FL", "Columbia", {"owner": "DAVIS TRUST"},
         "0001-01-01T00:00:00Z"),
        ("77-1", "qpublic", "ZZ", "Nowhere", {"owner": "NOBODY"}, "2026-11-24T12:00:00Z"),
    ]  # fmt: skip
    connection = psycopg2.connect(url)
    try:
        with connection, connection.cursor() as cursor:
            cursor.execute(ORIGINAL_PARCELS_DDL)
            for parcel_id, platform, state, county, data, scraped_at in rows:
                cursor.execute(
                    "INSERT INTO parcels (parcel_id, platform, state, county, data, scraped_at,"
                    " worker_id, created_at) VALUES (%s, %s, %s, %s, %s, %s, 'w-1',"
                    " '2026-11-25T08:00:00Z')",
                    (parcel_id, platform, state, county, Json(data), scraped_at),
                )
    finally:
        connection.close()
    yield url
    drop_database(admin_url, name)


@pytest.fixture
def clean_legacy_queues() -> None:
    """A RabbitMQ broker is not flushed between tests: empty the queues this test reads."""
    from services.dispatch.broker_client import queue_for
    from services.queues import scrape_queue_names
    from tasks.app import app

    with app.connection_for_write() as connection:
        channel = connection.channel()
        try:
            for name in scrape_queue_names(LEGACY_PLATFORMS):
                queue = queue_for(name).bind(channel)
                queue.declare()
                queue.purge()
        finally:
            channel.close()


def ledger(session: Session) -> list[tuple[Any, ...]]:
    session.rollback()
    return [
        tuple(row)
        for row in session.execute(
            text(
                "SELECT platform, county, parcel_id, status, priority, request_id"
                " FROM scrape_tasks ORDER BY platform, parcel_key"
            )
        )
    ]


def depths() -> dict[tuple[str, int], int]:
    return {
        (platform, priority): queue_depth(platform, priority)
        for platform in LEGACY_PLATFORMS
        for priority in (1, 2, 3, 4)
        if queue_depth(platform, priority)
    }


def run_import(*args: str) -> str:
    result = CliRunner().invoke(main, ["import-legacy", *args, "--batch-size", "2"])
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.usefixtures(clean_legacy_queues.__name__)
def test_every_legacy_task_is_enqueued_once_and_a_second_run_is_a_no_op(
    legacy_redis_url: str, db_session: Session
) -> None:
    first = run_import("--redis-url", legacy_redis_url)

    assert (
        "tasks: 7 queued and 2 in processing in 5 lists; enqueued 6, already imported 1, "
        "already active 0, invalid 2"
    ) in first
    assert "queue:qpublic:p3[1]: not JSON" in first  # oldest first: index 1 is the 2nd pushed
    assert "custom_gis 0002141099: unknown platform 'custom_gis'" in first
    assert ledger(db_session) == [
        ("beacon", "dixie", "010813-00003634-1100", "queued", 1, "legacy-import"),
        ("beacon", "dixie", "35-08-13-0000-3900-0200", "queued", 1, "legacy-import"),
        ("floridatax", "union", "1805210000005700", "queued", 3, "legacy-import"),
        ("qpublic", "gadsden", "1-32-4N-4W-0000-00322-0300", "queued", 3, "legacy-import"),
        ("qpublic", "columbia", "R12074-000", "queued", 3, "legacy-import"),
        ("tyler", "harris", "0021190000005", "queued", 2, "legacy-import"),
    ]
    expected_depths = {("beacon", 1): 2, ("qpublic", 3): 2, ("tyler", 2): 1, ("floridatax", 3): 1}
    assert depths() == expected_depths
    legacy = redis.Redis.from_url(legacy_redis_url)
    assert legacy.llen("queue:qpublic:p3") == 4 and legacy.llen("processing:worker-7") == 1
    legacy.close()

    # One imported task finishes before the second run: it must not come back either.
    db_session.execute(
        text("UPDATE scrape_tasks SET status = 'cancelled' WHERE parcel_id = 'R12074-000'")
    )
    db_session.commit()
    second = run_import("--redis-url", legacy_redis_url)

    assert "enqueued 0, already imported 7, already active 0, invalid 2" in second
    assert len(ledger(db_session)) == 6
    assert depths() == expected_depths
    assert_ledger_balanced(db_session, enqueued=6)


def test_every_legacy_parcel_is_ingested_once_and_a_second_run_is_a_no_op(
    legacy_postgres_url: str, db_session: Session
) -> None:
    first = run_import("--postgres-url", legacy_postgres_url)

    assert "parcels: 6 found; inserted 5, updated 0, unchanged 0, stale 0, rejected 1" in first, (
        first
    )
    assert "parcels row id 6: unknown state 'ZZ'" in first
    rows = db_session.execute(
        text(
            "SELECT parcel_id, platform, total_due, is_delinquent, scraped_at, updated_at"
            " FROM parcels ORDER BY parcel_id"
        )
    ).all()
    by_id = {row.parcel_id: row for row in rows}
    assert str(by_id["35-08-13-0000-3900-0200"].total_due) == "1234.56"
    assert str(by_id["123-45-678"].total_due) == "3210.45"
    assert by_id["0021190000005"].is_delinquent is True
    assert by_id["R12074-000"].scraped_at.isoformat() == "2026-11-25T08:00:00+00:00"
    snapshots = db_session.execute(text("SELECT count(*) FROM parcel_snapshots")).scalar_one()
    assert (len(rows), snapshots) == (5, 5)

    second = run_import("--postgres-url", legacy_postgres_url)

    assert "inserted 0, updated 0, unchanged 5, stale 0, rejected 1" in second
    db_session.rollback()
    again = db_session.execute(
        text(
            "SELECT parcel_id, platform, total_due, is_delinquent, scraped_at, updated_at"
            " FROM parcels ORDER BY parcel_id"
        )
    ).all()
    assert again == rows
    assert db_session.execute(text("SELECT count(*) FROM parcel_snapshots")).scalar_one() == 5


def test_a_database_in_another_layout_is_refused_in_one_line(test_servers: TestServers) -> None:
    admin_url, _ = test_servers.admin_database
    name = f"taxlien_other_{uuid.uuid4().hex[:8]}"
    create_database(admin_url, name)
    url = replace_database(admin_url, name)
    try:
        connection = psycopg2.connect(url)
        with connection, connection.cursor() as cursor:
            cursor.execute("CREATE TABLE parcels (id uuid PRIMARY KEY, parcel_id text, state text)")
        connection.close()
        result = CliRunner().invoke(main, ["import-legacy", "--postgres-url", url])
    finally:
        drop_database(admin_url, name)

    assert result.exit_code == 1
    assert "not the original gateway's layout (missing county, data, platform)" in result.output
    nothing = CliRunner().invoke(main, ["import-legacy"])
    assert nothing.exit_code == 2 and "--redis-url" in nothing.output
