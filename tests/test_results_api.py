"""POST /internal/results: per-item validation, 202 before ingest, wait mode, caps, metrics."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from db.models import Parcel
from services.queues import INGEST_QUEUE
from tests.celery_workers import WorkerProcess
from tests.outages import TcpProxy
from tests.waiting import wait_for

# Every test here publishes to the ingest queue or purges it (the autouse fixture below).
pytestmark = pytest.mark.broker
T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
ASYNC = {"Prefer": "respond-async"}  # the 202 answer; without it, tests/test_original_contract.py


def result_item(n: int, *, scraped_at: datetime = T0, owner: str = "SMITH") -> dict[str, Any]:
    return {
        "task_id": str(uuid.uuid4()),
        "parcel_id": f"01-0813-{n:08d}",
        "platform": "qpublic",
        "state": "FL",
        "county": "Dixie",
        "data": {"owner": owner, "total_due": f"${n}00.00", "tax_year": "2025"},
        "scraped_at": scraped_at.isoformat(),
        "parse_duration_ms": 5,
    }


def parcel_count(session: Session) -> int:
    session.rollback()  # see rows committed by other processes
    return session.execute(select(func.count()).select_from(Parcel)).scalar_one()


def ingest_queue_length(*, purge: bool = False) -> int:
    """Messages waiting in the ingest queue (declared as Celery declares it; any broker)."""
    from tasks.app import app

    with app.connection_for_write() as connection:
        queue = app.amqp.queues[INGEST_QUEUE].bind(connection.default_channel)
        declared = queue.queue_declare()
        if purge:
            queue.purge()
            return 0
        return int(declared.message_count)


@pytest.fixture(autouse=True)
def _empty_ingest_queue() -> Iterator[None]:
    # Tests here publish without always running a worker; with RabbitMQ nothing flushes that.
    ingest_queue_length(purge=True)
    yield
    ingest_queue_length(purge=True)


def test_each_item_is_validated_on_its_own(
    api_client: TestClient, worker_headers: dict[str, str]
) -> None:
    bad_task = {**result_item(2), "task_id": "42"}
    no_county = {k: v for k, v in result_item(3).items() if k != "county"}
    future = result_item(4, scraped_at=datetime.now(UTC) + timedelta(days=1))
    body = [result_item(1), bad_task, no_county, "not an object", future, result_item(5)]

    response = api_client.post("/internal/results", json=body, headers={**worker_headers, **ASYNC})

    assert response.status_code == 202
    assert response.headers["Preference-Applied"] == "respond-async"
    answer = response.json()
    assert (answer["accepted"], answer["failed"]) == (2, 4)
    reasons = {error["index"]: error["reason"] for error in answer["errors"]}
    assert sorted(reasons) == [1, 2, 3, 4]
    assert "task_id" in reasons[1] and "county" in reasons[2]
    assert "object" in reasons[3] and "future" in reasons[4]
    assert "inserted" not in answer  # only with ?wait=


def test_a_body_that_is_not_a_json_array_is_refused_whole(
    api_client: TestClient, worker_headers: dict[str, str]
) -> None:
    not_json = api_client.post(
        "/internal/results",
        content=b"[{",
        headers={**worker_headers, "content-type": "application/json"},
    )
    an_object = api_client.post("/internal/results", json={"a": 1}, headers=worker_headers)

    assert not_json.status_code == 422 and "JSON" in not_json.json()["error"]["message"]
    assert an_object.status_code == 422 and "array" in an_object.json()["error"]["message"]


def test_results_need_a_worker_token(api_client: TestClient) -> None:
    response = api_client.post("/internal/results", json=[result_item(1)])

    assert response.status_code == 401


def test_an_oversized_body_is_refused_with_the_limit_in_the_message(
    api_client: TestClient, worker_headers: dict[str, str]
) -> None:
    from settings import get_settings

    limit = get_settings().results_max_body_bytes
    padding = "x" * (limit + 1)
    body = json.dumps([{**result_item(1), "data": {"blob": padding}}]).encode()

    response = api_client.post(
        "/internal/results",
        content=body,
        headers={**worker_headers, "content-type": "application/json"},
    )

    assert response.status_code == 413
    assert str(limit) in response.json()["error"]["message"]


def test_valid_items_are_queued_before_the_answer_and_ingested_later(
    api_client: TestClient,
    worker_headers: dict[str, str],
    db_session: Session,
    celery_worker_factory: Callable[..., WorkerProcess],
) -> None:
    response = api_client.post(
        "/internal/results",
        json=[result_item(n) for n in range(3)],
        headers={**worker_headers, **ASYNC},
    )

    assert response.status_code == 202 and response.json()["accepted"] == 3
    assert ingest_queue_length() == 1  # one chunk, waiting: no worker consumes yet
    assert parcel_count(db_session) == 0

    celery_worker_factory([INGEST_QUEUE])
    wait_for(lambda: parcel_count(db_session) == 3, timeout_s=30, what="3 parcels ingested")


def test_wait_mode_reports_what_the_ingest_did(
    api_client: TestClient,
    worker_headers: dict[str, str],
    db_session: Session,
    celery_worker_factory: Callable[..., WorkerProcess],
) -> None:
    celery_worker_factory([INGEST_QUEUE])
    count = 2100  # three chunks of the default 1000
    first = [result_item(n) for n in range(count)]
    url = "/internal/results?wait=30"
    headers = {**worker_headers, **ASYNC}

    inserted = api_client.post(url, json=first, headers=headers).json()
    again = api_client.post(url, json=first, headers=headers).json()
    later = T0 + timedelta(days=1)
    mixed = [result_item(0, scraped_at=later, owner="NEW"), result_item(1, owner="OLD")]
    changed = api_client.post(url, json=mixed, headers=headers).json()

    assert inserted["inserted"] == count and inserted["pending"] == 0
    assert (again["inserted"], again["updated"], again["unchanged"]) == (0, 0, count)
    assert (changed["updated"], changed["stale"], changed["pending"]) == (1, 1, 0)
    assert parcel_count(db_session) == count

    metrics = api_client.get("/metrics").text
    assert f'gateway_ingest_rows_total{{outcome="inserted"}} {float(count)}' in metrics
    assert f'gateway_ingest_rows_total{{outcome="unchanged"}} {float(count)}' in metrics
    assert 'gateway_ingest_rows_total{outcome="stale"} 1.0' in metrics


def test_wait_mode_without_a_worker_reports_pending_items(
    api_client: TestClient, worker_headers: dict[str, str]
) -> None:
    response = api_client.post(
        "/internal/results?wait=0.3",
        json=[result_item(1), result_item(2)],
        headers={**worker_headers, **ASYNC},
    )

    assert response.status_code == 202
    answer = response.json()
    assert (answer["accepted"], answer["inserted"], answer["pending"]) == (2, 0, 2)


def test_rejected_items_are_counted_in_metrics(
    api_client: TestClient, worker_headers: dict[str, str]
) -> None:
    api_client.post("/internal/results", json=[{"bad": 1}, {"bad": 2}], headers=worker_headers)

    metrics = api_client.get("/metrics").text

    assert 'gateway_ingest_rows_total{outcome="rejected"} 2.0' in metrics


def test_a_scrape_worker_can_send_results_straight_to_the_ingest_task(
    db_session: Session, celery_worker_factory: Callable[..., WorkerProcess]
) -> None:
    from tasks.app import app

    celery_worker_factory([INGEST_QUEUE])

    sent = app.send_task("ingest.parcel_results", args=[[result_item(7), {"parcel_id": "?"}]])

    assert sent.get(timeout=30) == {
        "inserted": 1, "updated": 0, "unchanged": 0, "stale": 0, "rejected": 1,
        "errors": [[1, "data: must be an object"]],
    }  # fmt: skip
    assert parcel_count(db_session) == 1
    # Not lost: kept with its reason, as sent.
    [reject] = db_session.execute(text("SELECT reason_code, payload FROM ingest_rejects")).all()
    assert reject.reason_code == "invalid" and json.loads(reject.payload) == {"parcel_id": "?"}


@pytest.mark.parametrize(
    ("duration", "reason"),
    [("9" * 400, "too large"), ("1e400", "finite")],
    ids=["400 digits", "1e400"],
)
def test_an_absurd_parse_duration_rejects_only_its_item(
    api_client: TestClient, worker_headers: dict[str, str], duration: str, reason: str
) -> None:
    good = json.dumps(result_item(1))
    bad = json.dumps(result_item(2)).replace(
        '"parse_duration_ms": 5', f'"parse_duration_ms": {duration}'
    )
    response = api_client.post(
        "/internal/results",
        content=f"[{good}, {bad}]".encode(),
        headers={**worker_headers, **ASYNC, "content-type": "application/json"},
    )

    assert response.status_code == 202
    answer = response.json()
    assert (answer["accepted"], answer["failed"]) == (1, 1)
    assert reason in answer["errors"][0]["reason"]


def test_a_deeply_nested_body_is_refused_with_422(
    api_client: TestClient, worker_headers: dict[str, str]
) -> None:
    response = api_client.post(
        "/internal/results",
        content=b"[" * 100_000 + b"]" * 100_000,
        headers={**worker_headers, "content-type": "application/json"},
    )

    assert response.status_code == 422 and "nested" in response.json()["error"]["message"]


def test_results_are_refused_with_503_while_the_broker_is_down_and_taken_once_it_is_back(
    api_client: TestClient,
    worker_headers: dict[str, str],
    stoppable_broker: TcpProxy,
    db_session: Session,
) -> None:
    stoppable_broker.stop()
    refused = api_client.post("/internal/results", json=[result_item(1)], headers=worker_headers)
    stoppable_broker.start()
    taken = api_client.post("/internal/results", json=[result_item(2)], headers=worker_headers)

    assert refused.status_code == 503, refused.text
    assert refused.json()["error"]["code"] == "SERVICE_UNAVAILABLE"
    assert "resend" in refused.json()["error"]["message"]
    assert taken.status_code == 202 and taken.json()["accepted"] == 1, taken.text
    assert ingest_queue_length() == 1  # only the item taken after the outage
    # The refused request left nothing in the outbox for the re-publish job to send.
    outbox = db_session.execute(text("SELECT payload FROM result_outbox")).scalars().all()
    assert [json.loads(payload)[0]["parcel_id"] for payload in outbox] == ["01-0813-00000002"]
