"""The dashboard's summary row, rendered against the running API.

A real API process serves ``/metrics`` while work goes through it over HTTP (enqueue, lease,
complete, a dead letter, a heartbeat, a result left waiting for ingest). Each summary stat's
queries are evaluated on two scrapes (tests/promql_subset.py) and, where a Prometheus binary
is installed, by a real Prometheus scraping the same process.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from gateway_localstack.servers import find_free_port
from tests.dispatch_helpers import clean_dispatch_queues  # autouse fixture
from tests.promql_subset import Scrapes, Value, evaluate, read_samples
from tests.test_grafana_dashboard import DASHBOARD
from tests.waiting import wait_for

pytestmark = [pytest.mark.broker, pytest.mark.usefixtures(clean_dispatch_queues.__name__)]
ALL_PLATFORMS = ".*"  # the platform variable's "All"


def summary_queries() -> dict[str, list[str]]:
    """Each summary stat's queries, the platform variable set to All."""
    panels = json.loads(DASHBOARD.read_text())["panels"]
    first_row_end = next(i for i, p in enumerate(panels[1:], start=1) if p["type"] == "row")
    return {
        panel["title"]: [t["expr"].replace("$platform", ALL_PLATFORMS) for t in panel["targets"]]
        for panel in panels[1:first_row_end]
    }


def drive_the_fleet(api: httpx.Client, admin: dict[str, str], worker: dict[str, str]) -> None:
    """Two tasks: one completed, one dead; a heartbeat; a result left in the ingest queue."""
    items = [
        {"platform": "demo", "state": "FL", "county": "dixie", "parcel_id": f"SUM-{n}"}
        for n in range(3)
    ]
    enqueued = api.post("/admin/tasks", json={"tasks": items}, headers=admin)
    assert enqueued.json()["enqueued"] == 3, enqueued.text
    work = api.get("/internal/work", params={"platforms": "demo", "capacity": 2}, headers=worker)
    done, hopeless = work.json()["tasks"]
    completed = api.post(
        f"/internal/tasks/{done['task_id']}/complete",
        json={"lease_token": done["lease_token"]},
        headers=worker,
    )
    assert completed.status_code == 200, completed.text
    failed = api.post(
        f"/internal/tasks/{hopeless['task_id']}/fail",
        json={
            "reason": "blocked",
            "retry_suggested": False,
            "lease_token": hopeless["lease_token"],
        },
        headers=worker,
    )
    assert failed.json()["moved_to_dlq"] is True, failed.text
    api.post("/internal/heartbeat", json={"platforms": ["demo"]}, headers=worker)
    result = {
        "task_id": None, "parcel_id": "SUM-WAITING", "platform": "demo", "state": "FL",
        "county": "dixie", "data": {"owner": "DOE JANE"},
        "scraped_at": "2026-11-01T12:00:00+00:00",
    }  # fmt: skip
    waiting = api.post(
        "/internal/results", json=[result], headers={**worker, "Prefer": "respond-async"}
    )
    assert waiting.status_code == 202, waiting.text


def only_value(value: Value) -> float:
    assert isinstance(value, dict) and len(value) == 1, value
    return next(iter(value.values()))


def test_the_summary_stats_render_from_the_running_api(
    running_api: str, admin_headers: dict[str, str], worker_headers: dict[str, str]
) -> None:
    with httpx.Client(base_url=running_api, timeout=30) as api:
        before, started = api.get("/metrics").text, time.monotonic()
        drive_the_fleet(api, admin_headers, worker_headers)
        after = api.get("/metrics").text
    scrapes = Scrapes(read_samples(before), read_samples(after), time.monotonic() - started)
    queries = summary_queries()

    def stat(title: str, index: int = 0) -> float:
        return only_value(evaluate(queries[title][index], scrapes))

    assert stat("Throughput (tasks succeeded/min)") > 0
    assert stat("Success rate") == pytest.approx(0.5)  # one succeeded, one dead
    assert stat("Oldest queued task") > 0  # SUM-2 is still queued
    assert stat("Dead letters") == 1
    assert stat("Workers up") == 1  # HTTP workers; Celery's query reads Flower
    assert "flower_" in queries["Workers up"][1]
    assert stat("Ingest lag (messages)") == 1


@pytest.fixture
def prometheus(running_api: str, tmp_path: Path) -> Iterator[str]:
    """A real Prometheus scraping the running API every second; yields its address."""
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip("no prometheus binary (Debian: apt-get install prometheus)")
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [
            {"job_name": "gateway-api", "static_configs": [{"targets": [running_api[7:]]}]}
        ],
    }
    config_path = tmp_path / "prometheus.yml"
    config_path.write_text(yaml.safe_dump(config))
    port = find_free_port()
    log_path = tmp_path / "prometheus.log"
    command = [
        binary, f"--config.file={config_path}", f"--storage.tsdb.path={tmp_path / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]  # fmt: skip
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    address = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _is_ready(address, process, log_path), timeout_s=60, what="Prometheus")
        yield address
    finally:
        process.terminate()
        process.wait(timeout=20)


def _is_ready(address: str, process: subprocess.Popen[bytes], log_path: Path) -> bool:
    if process.poll() is not None:
        raise AssertionError(f"prometheus exited:\n{log_path.read_text(errors='replace')}")
    try:
        return httpx.get(f"{address}/-/ready", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def query(prometheus: str, expr: str) -> list[dict[str, Any]]:
    answer = httpx.get(f"{prometheus}/api/v1/query", params={"query": expr}, timeout=10).json()
    assert answer["status"] == "success", answer
    result: list[dict[str, Any]] = answer["data"]["result"]
    return result


def test_a_real_prometheus_renders_every_summary_query(
    running_api: str,
    prometheus: str,
    admin_headers: dict[str, str],
    worker_headers: dict[str, str],
) -> None:
    wait_for(lambda: query(prometheus, "gateway_ledger_tasks"), timeout_s=30, what="a scrape")
    with httpx.Client(base_url=running_api, timeout=30) as api:
        drive_the_fleet(api, admin_headers, worker_headers)

    def success_rate() -> list[dict[str, Any]]:
        return query(prometheus, summary_queries()["Success rate"][0])

    def has_success_rate() -> bool:
        result = success_rate()
        return bool(result) and float(result[0]["value"][1]) > 0  # NaN until a rate is seen

    # Rates need two scrapes after the work.
    wait_for(has_success_rate, timeout_s=30, what="the success rate to render")
    for title, exprs in summary_queries().items():
        for expr in exprs:
            if "flower_" in expr:
                continue  # Flower is not scraped here
            result = query(prometheus, expr)
            assert len(result) == 1, (title, expr, result)
            assert float(result[0]["value"][1]) >= 0, (title, expr, result)
    assert float(success_rate()[0]["value"][1]) == pytest.approx(0.5)
