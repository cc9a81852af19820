"""Every Grafana panel's series moves when what it watches happens.

Real actions (requests, a 503, enqueue, leases, failures, an ingest through a real worker, a
refused public call, Celery runs) against the API's ``/metrics`` and a real Flower process's
``/metrics``: each panel's series must be above its value before the action.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.orm import Session

from gateway_localstack.servers import find_free_port
from services.queues import INGEST_QUEUE, scrape_queue_names
from tasks.dispatch_jobs import reap_leases
from tests.celery_workers import REPO_ROOT, WorkerProcess
from tests.dispatch_helpers import (  # clean_dispatch_queues: autouse fixture
    clean_dispatch_queues,
    enqueue,
    expire_leases,
    lease,
    poll_with_every_broker_connection_held,
    publish_duplicate,
)
from tests.waiting import wait_for

pytestmark = [pytest.mark.broker, pytest.mark.usefixtures(clean_dispatch_queues.__name__)]
DASHBOARD = REPO_ROOT / "ops" / "grafana" / "dashboards" / "gateway.json"
Labels = dict[str, str]
# Each panel, the series it reads, and the labels of the series the actions below move.
PANEL_SERIES: dict[str, tuple[str, Labels]] = {
    "Throughput (tasks succeeded/min)": (
        "gateway_tasks_finished_total",
        {"platform": "demo", "outcome": "succeeded"},
    ),
    "Success rate": ("gateway_tasks_finished_total", {"platform": "demo"}),
    "Oldest queued task": ("gateway_oldest_queued_age_seconds", {"platform": "demo"}),
    "Dead letters": ("gateway_dead_letters", {"platform": "demo"}),
    "Workers up": ("gateway_workers", {"state": "alive"}),
    "Ingest lag (messages)": ("gateway_broker_queue_messages", {"queue": "ingest"}),
    "Tasks finished/min by platform and outcome": (
        "gateway_tasks_finished_total",
        {"platform": "demo", "outcome": "retried"},
    ),
    "Tasks enqueued/min by platform": ("gateway_tasks_enqueued_total", {"platform": "demo"}),
    "Leases taken back/min by reason": (
        "gateway_leases_expired_total",
        {"platform": "demo", "reason": "lease_expired"},
    ),
    "Fenced-off calls/min by action": (
        "gateway_fenced_off_total",
        {"platform": "demo", "action": "complete"},
    ),
    "Duplicate deliveries dropped/min by path": (
        "gateway_duplicate_deliveries_dropped_total",
        {"path": "http"},
    ),
    "Task wait p50 / p95 by platform": (
        "gateway_task_wait_seconds_bucket",
        {"platform": "demo", "le": "+Inf"},
    ),
    "Task run p50 / p95 by platform": (
        "gateway_task_run_seconds_bucket",
        {"platform": "demo", "le": "+Inf"},
    ),
    "Oldest queued task age by platform and priority": (
        "gateway_oldest_queued_age_seconds",
        {"platform": "demo", "priority": "3"},
    ),
    "Ledger balance": ("gateway_ledger_tasks", {"term": "enqueued"}),
    "Result items refused or rejected/min by reason": (
        "gateway_ingest_rows_total",
        {"outcome": "rejected"},
    ),
    "Ingest chunk size p50 / p95 (items)": ("gateway_ingest_chunk_size_bucket", {"le": "+Inf"}),
    "Ingest backlog: messages in the service queues": (
        "gateway_broker_queue_messages",
        {"queue": "ingest"},
    ),
    "Readiness by check": ("gateway_readiness_check", {"check": "database"}),
    "Public API calls/s by tier": ("gateway_public_requests_total", {"tier": "anonymous"}),
    "API requests/s by route": ("gateway_requests_total", {"path": "/internal/work"}),
    "API 5xx responses/s": ("gateway_requests_total", {"path": "/internal/work", "status": "503"}),
    "Single completes per group p50 / p95": ("gateway_complete_group_size_bucket", {"le": "+Inf"}),
    "API p95 latency by route": (
        "gateway_request_duration_seconds_bucket",
        {"path": "/internal/work", "le": "+Inf"},
    ),
    "Queue depth by platform and priority": (
        "gateway_queue_depth",
        {"platform": "demo", "priority": "3"},
    ),
    "Tasks held by workers": ("gateway_tasks_in_progress", {"platform": "demo", "kind": "http"}),
    "Tasks waiting for a retry": ("gateway_retry_wait_tasks", {"platform": "demo"}),
    "Dead letters by platform and reason": (
        "gateway_dead_letters",
        {"platform": "demo", "reason": "format_changed"},
    ),
    "HTTP workers by state": ("gateway_workers", {}),
    "Start rate limits in force (per minute)": (
        "gateway_rate_limit_per_minute",
        {"platform": "qpublic"},
    ),
    "Ingested rows/s by outcome": ("gateway_ingest_rows_total", {"outcome": "inserted"}),
    "Unparsed scraped values/s by field": (
        "gateway_ingest_unparsed_values_total",
        {"field": "total_due"},
    ),
    "Public API refusals/s by tier and limit": (
        "gateway_rate_limit_hits_total",
        {"tier": "anonymous", "limit": "rate"},
    ),
    "Celery workers online (Flower)": ("flower_worker_online", {}),
    "Celery tasks executing by worker (Flower)": (
        "flower_worker_number_of_currently_executing_tasks",
        {},
    ),
    "Celery task events/s by task and type (Flower)": (
        "flower_events_total",
        {"task": "scrape.parcel", "type": "task-succeeded"},
    ),
    "Celery task p95 runtime by task (Flower)": (
        "flower_task_runtime_seconds_bucket",
        {"task": "scrape.parcel", "le": "+Inf"},
    ),
}
# Levels rather than counts: they are checked to be up, not to move.
STEADY_PANELS = {"Readiness by check"}


def series_value(metrics_text: str, name: str, labels: Labels) -> float:
    """The sum of the samples of ``name`` whose labels include ``labels``."""
    return sum(
        sample.value
        for family in text_string_to_metric_families(metrics_text)
        for sample in family.samples
        if sample.name == name and labels.items() <= sample.labels.items()
    )


def panel_value(metrics_text: str, title: str) -> float:
    name, labels = PANEL_SERIES[title]
    return series_value(metrics_text, name, labels)


def test_every_dashboard_panel_has_its_series_checked_here() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    panels = {panel["title"]: panel for panel in dashboard["panels"] if panel["type"] != "row"}

    assert set(panels) == set(PANEL_SERIES)
    for title, (name, _) in PANEL_SERIES.items():
        series = name.removesuffix("_bucket")
        assert any(series in target["expr"] for target in panels[title]["targets"]), title


def refuse_an_anonymous_search(api_client: TestClient) -> None:
    for _ in range(30):  # the anonymous burst is 5: a 429 comes long before 30 calls
        response = api_client.get("/v1/search", params={"state": "FL"})
        if response.status_code == 429:
            return
        assert response.status_code == 200, response.text
    raise AssertionError("30 anonymous searches in a row were never refused")


def test_the_api_panels_move_with_requests_leases_failures_ingests_and_refusals(
    api_client: TestClient,
    admin_headers: dict[str, str],
    worker_headers: dict[str, str],
    celery_worker_factory: Callable[..., WorkerProcess],
    db_session: Session,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def metrics() -> str:
        return str(api_client.get("/metrics").text)

    before = metrics()
    gateway_panels = [title for title in PANEL_SERIES if "(Flower)" not in title]

    ids = enqueue(api_client, admin_headers, ["DASH-1", "DASH-2", "DASH-3"])
    queued = metrics()
    response = poll_with_every_broker_connection_held(api_client, worker_headers, monkeypatch)
    assert response.status_code == 503
    tasks = lease(api_client, worker_headers, capacity=2)
    api_client.post(
        "/internal/heartbeat",
        json={"active_tasks": 2, "platforms": ["demo"]},
        headers=worker_headers,
    )
    held = metrics()
    fail_url = "/internal/tasks/{}/fail"
    retryable = {"reason": "platform_down", "retry_suggested": True}
    hopeless = {"reason": "format_changed", "retry_suggested": False}
    for task, body in zip(tasks, (retryable, hopeless), strict=True):
        failed = api_client.post(
            fail_url.format(task["task_id"]), json=body, headers=worker_headers
        )
        assert failed.status_code == 200, failed.text
    # A lease that is taken back, after its holder was fenced off with a stale token.
    enqueue(api_client, admin_headers, ["DASH-4"])
    (extra,) = lease(api_client, worker_headers)
    stale = api_client.post(
        f"/internal/tasks/{extra['task_id']}/complete",
        json={"lease_token": extra["lease_token"] + 1000},
        headers=worker_headers,
    )
    assert stale.status_code == 409, stale.text
    expire_leases()
    assert reap_leases()["expired"] == 1
    # A result accepted while no ingest worker runs waits in the ingest queue.
    waiting = {
        "task_id": None, "parcel_id": "DASH-WAITING", "platform": "demo", "state": "FL",
        "county": "dixie", "data": {"owner": "DOE JANE"},
        "scraped_at": "2026-11-01T12:00:00+00:00",
    }  # fmt: skip
    async_headers = {**worker_headers, "Prefer": "respond-async"}
    accepted = api_client.post("/internal/results", json=[waiting], headers=async_headers)
    assert accepted.status_code == 202, accepted.text
    backlog = metrics()
    refused = api_client.post(
        "/internal/results", json=[{**waiting, "parcel_id": ""}], headers=async_headers
    )
    assert refused.json()["failed"] == 1, refused.text
    celery_worker_factory([INGEST_QUEUE])
    unparsable = {"owner": "SMITH JOHN", "total_due": "ask the clerk"}
    result = {
        "task_id": str(ids[2]), "parcel_id": "DASH-3", "platform": "demo", "state": "FL",
        "county": "dixie", "data": unparsable, "scraped_at": "2026-11-01T12:00:00+00:00",
    }  # fmt: skip
    ingested = api_client.post(
        "/internal/results", params={"wait": 20}, json=[result], headers=worker_headers
    )
    assert ingested.json()["inserted"] == 1, ingested.text
    refuse_an_anonymous_search(api_client)
    limited = api_client.put(  # qpublic: this test's demo leases stay unlimited
        "/admin/rate-limits/qpublic", json={"per_minute": 30}, headers=admin_headers
    )
    assert limited.status_code == 200, limited.text
    publish_duplicate(db_session, ids[0])  # a redelivery of a task no longer queued ...
    leased_later = lease(api_client, worker_headers, capacity=10)  # ... is dropped, counted
    assert ids[0] not in {uuid.UUID(task["task_id"]) for task in leased_later}
    after = metrics()

    moved_by = {
        "Queue depth by platform and priority": queued,
        "Oldest queued task": queued,
        "Oldest queued task age by platform and priority": queued,
        "Tasks held by workers": held,
        "HTTP workers by state": held,
        "Workers up": held,
        "Ingest lag (messages)": backlog,
        "Ingest backlog: messages in the service queues": backlog,
    }
    for title in gateway_panels:
        if title in STEADY_PANELS:
            assert panel_value(after, title) > 0, title
            continue
        assert panel_value(moved_by.get(title, after), title) > panel_value(before, title), title
    # One unparsable value was ingested once: counted once, not once per code path.
    unparsed = "Unparsed scraped values/s by field"
    assert panel_value(after, unparsed) - panel_value(before, unparsed) == 1


@pytest.fixture
def flower(tmp_path: Path) -> Iterator[str]:
    """A real Flower process on the run's broker; yields its address."""
    port = find_free_port()
    log_path = tmp_path / "flower.log"
    command = [
        sys.executable, "-m", "celery", "-A", "tasks.app", "flower",
        "--address=127.0.0.1", f"--port={port}",
    ]  # fmt: skip
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT)
    address = f"http://127.0.0.1:{port}"

    def is_up() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"flower exited:\n{log_path.read_text(errors='replace')}")
        try:
            return httpx.get(f"{address}/healthcheck", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_for(is_up, timeout_s=60, what="Flower to answer")
        yield address
    finally:
        process.terminate()
        process.wait(timeout=20)


def test_the_celery_and_flower_panels_move_while_a_real_worker_runs_and_fails_scrapes(
    api_client: TestClient,
    admin_headers: dict[str, str],
    celery_worker_factory: Callable[..., WorkerProcess],
    flower: str,
) -> None:
    def metrics() -> str:
        return str(api_client.get("/metrics").text)

    def flower_metrics() -> str:
        return httpx.get(f"{flower}/metrics", timeout=5).text

    def moves(read: Callable[[], str], name: str, labels: Labels) -> Callable[[], bool]:
        return lambda: series_value(read(), name, labels) > 0

    api_before, flower_before = metrics(), flower_metrics()
    # Long enough to be seen running from the ledger and through Flower's events.
    slow = {"GATEWAY_DEMO_SCRAPE_DELAY_S": "4"}
    celery_worker_factory(scrape_queue_names(["demo"]), extra_env=slow)
    enqueue(api_client, admin_headers, ["SLOW-1", "FAIL-DASH-1"])

    for read, name, labels in [
        (metrics, "gateway_tasks_in_progress", {"platform": "demo", "kind": "celery"}),
        (flower_metrics, *PANEL_SERIES["Celery tasks executing by worker (Flower)"]),
        (flower_metrics, *PANEL_SERIES["Celery workers online (Flower)"]),
        (metrics, *PANEL_SERIES["Tasks waiting for a retry"]),
        (flower_metrics, *PANEL_SERIES["Celery task events/s by task and type (Flower)"]),
        (flower_metrics, *PANEL_SERIES["Celery task p95 runtime by task (Flower)"]),
    ]:
        before = series_value(api_before if read is metrics else flower_before, name, labels)
        assert before == 0, (name, labels)
        wait_for(moves(read, name, labels), timeout_s=30, what=f"{name}{labels} to move")
