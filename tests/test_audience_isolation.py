"""Public search traffic cannot slow the workers down: 100 anonymous search clients hammering
a real API process do not delay a worker's lease or complete beyond a second."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from gateway_localstack.servers import find_free_port
from tests.celery_workers import REPO_ROOT
from tests.conftest import ADMIN_TOKEN, WORKER_TOKEN
from tests.dispatch_helpers import clean_dispatch_queues
from tests.public_factories import ParcelSpec, add_parcels
from tests.waiting import wait_for

pytestmark = [pytest.mark.broker, pytest.mark.usefixtures(clean_dispatch_queues.__name__)]
CLIENTS = 100
ROUNDS = 8
# Anonymous clients without a rate limit: the test is about what gets through a limiter.
UNLIMITED_ANONYMOUS = {
    "anonymous": {"per_minute": 1_000_000, "burst": 1_000_000, "daily": {"search": None}}
}


@pytest.fixture
def api_process(tmp_path: Path) -> Iterator[str]:
    port = find_free_port()
    env = {
        **os.environ,
        "GATEWAY_HOST": "127.0.0.1",
        "GATEWAY_PORT": str(port),
        "GATEWAY_LOG_LEVEL": "WARNING",
        "GATEWAY_PUBLIC_TIERS": json.dumps(UNLIMITED_ANONYMOUS),
    }
    log = (tmp_path / "api.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway_api"], cwd=REPO_ROOT, env=env, stdout=log, stderr=log
    )
    url = f"http://127.0.0.1:{port}"

    def is_up() -> bool:
        try:
            return httpx.get(f"{url}/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_for(is_up, timeout_s=30, what="the API process")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=20)
        log.close()


def test_100_anonymous_search_clients_do_not_delay_leasing_or_completing(
    api_process: str, db_session: Session, tmp_path: Path
) -> None:
    add_parcels(
        db_session,
        [
            ParcelSpec(owner=f"OWNER {n}", address=f"{n} MAIN ST", total_due=f"${n}.00")
            for n in range(300)
        ],
    )
    admin = {"X-Admin-Token": ADMIN_TOKEN}
    worker = {"X-Worker-Token": WORKER_TOKEN, "X-Worker-ID": "isolated-worker"}
    with httpx.Client(base_url=api_process, timeout=30) as http:
        items = [
            {"platform": "demo", "state": "FL", "county": "dixie", "parcel_id": f"ISO-{n}"}
            for n in range(ROUNDS)
        ]
        assert http.post("/admin/tasks", json={"tasks": items}, headers=admin).status_code == 200

        load = subprocess.Popen(
            [sys.executable, "-m", "tests.search_load", api_process, str(CLIENTS)],
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert load.stdout is not None
        try:
            assert load.stdout.readline().strip() == "all clients answered"
            latencies = []
            for _ in range(ROUNDS):
                started = time.monotonic()
                leased = http.get(
                    "/internal/work", params={"platforms": "demo", "capacity": 1}, headers=worker
                )
                lease_s = time.monotonic() - started
                [task] = leased.json()["tasks"]
                started = time.monotonic()
                done = http.post(
                    f"/internal/tasks/{task['task_id']}/complete",
                    json={"lease_token": task["lease_token"]},
                    headers=worker,
                )
                complete_s = time.monotonic() - started
                assert done.status_code == 200, done.text
                latencies.append((round(lease_s, 3), round(complete_s, 3)))
        finally:
            load.terminate()
            tally, _ = load.communicate(timeout=30)

    assert "200" in tally, tally  # the searches really ran
    assert max(max(pair) for pair in latencies) < 1.0, (latencies, tally)


def test_metrics_and_readiness_read_the_servers_at_most_once_per_interval(
    api_client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy import event

    from db.session import get_engine
    from gateway_api.dispatch_metrics import dispatch_figures
    from gateway_api.routes.health import readiness
    from settings import get_settings

    monkeypatch.setenv("GATEWAY_METRICS_CACHE_S", "60")
    monkeypatch.setenv("GATEWAY_READINESS_CACHE_S", "60")
    get_settings.cache_clear()
    dispatch_figures.clear()
    readiness.clear()
    statements: list[str] = []

    def count(*args: object) -> None:
        statements.append(str(args[2]))

    event.listen(get_engine(), "before_cursor_execute", count)
    try:
        api_client.get("/metrics")
        api_client.get("/health/ready")
        first_round = len(statements)
        for _ in range(20):
            assert api_client.get("/metrics").status_code == 200
            assert api_client.get("/health/ready").status_code == 200
    finally:
        event.remove(get_engine(), "before_cursor_execute", count)
        get_settings.cache_clear()
        dispatch_figures.clear()
        readiness.clear()

    assert first_round > 0 and len(statements) == first_round, statements[first_round:]
