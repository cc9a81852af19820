"""The README's run command: the whole stack on embedded servers, stopped by Ctrl-C.

With GATEWAY_TEST_BROKER_URL set (``make test-rabbitmq``) the stack is given that broker, as
``GATEWAY_BROKER_URL`` gives it to ``make run``, instead of its own Redis.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from gateway_localstack.servers import find_free_port
from settings import to_sqlalchemy_url
from tests.celery_workers import REPO_ROOT
from tests.servers import TestServers
from tests.shared_data import DIXIE_PARCEL_IDS
from tests.waiting import wait_for

DEMO_TASKS = 40


def start_stack(
    data_dir: Path,
    ports: dict[str, int],
    log_path: Path,
    *,
    broker_url: str | None,
    extra_env: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    if broker_url is not None:
        env["GATEWAY_BROKER_URL"] = broker_url
    env.update(
        {
            "GATEWAY_LOCAL_DATA_DIR": str(data_dir),
            "GATEWAY_RAW_STORAGE_PATH": str(data_dir / "raw"),
            "GATEWAY_PORT": str(ports["api"]),
            "GATEWAY_FLOWER_PORT": str(ports["flower"]),
            "GATEWAY_LOCAL_REDIS_PORT": str(ports["redis"]),
            **(extra_env or {}),
        }
    )
    with log_path.open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "gateway_localstack"],
            cwd=REPO_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def is_healthy(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def registered_workers(flower: str) -> list[str]:
    try:
        response = httpx.get(
            f"{flower}/api/workers", params={"refresh": "true"},
            auth=("operator", "operator"), timeout=5,
        )  # fmt: skip
    except httpx.HTTPError:
        return []
    return list(response.json()) if response.status_code == 200 else []


def both_workers(flower: str) -> list[str]:
    names = registered_workers(flower)
    return names if len(names) == 2 else []


def stop_with_ctrl_c(process: subprocess.Popen[bytes]) -> int:
    process.send_signal(signal.SIGINT)
    return process.wait(timeout=60)


def demo_drained(api: str) -> bool:
    balance = httpx.get(
        f"{api}/admin/tasks/balance", headers={"X-Admin-Token": "local-admin-token"}, timeout=5
    ).json()
    return bool(balance["succeeded"] == DEMO_TASKS and balance["active"] == 0)


def workers_by_kind(data_dir: Path) -> set[str]:
    """Which kinds of worker finished the demo's tasks (Celery nodes are named name@host)."""
    env_lines = (data_dir / "stack.env").read_text().splitlines()
    url = next(line.split("=", 1)[1] for line in env_lines if "GATEWAY_POSTGRES_URL" in line)
    engine = create_engine(to_sqlalchemy_url(shlex.split(url)[0]))
    try:
        with engine.connect() as connection:
            rows = connection.execute(text("SELECT DISTINCT leased_by FROM scrape_tasks"))
            return {"celery" if "@" in row[0] else "http" for row in rows}
    finally:
        engine.dispose()


def configured_broker(servers: TestServers) -> str | None:
    """The run's explicit broker (GATEWAY_TEST_BROKER_URL), else None: the stack's own Redis."""
    return servers.broker_url if servers.broker_url != servers.redis_url else None


def purge_stack_queues() -> None:
    """The stack shared the run's broker: drop what its beat published meanwhile."""
    from services.dispatch.broker_client import queue_for
    from services.queues import INGEST_QUEUE, MAINTENANCE_QUEUE
    from tasks.app import app

    with app.connection_for_write() as connection:
        channel = connection.channel()
        try:
            for name in (MAINTENANCE_QUEUE, INGEST_QUEUE):
                queue_for(name).bind(channel).purge()
        finally:
            channel.close()


@pytest.mark.broker
def test_the_run_command_brings_up_api_worker_and_flower_and_keeps_data(
    tmp_path: Path, test_servers: TestServers
) -> None:
    from tasks.app import app

    broker_url = configured_broker(test_servers)
    ports = {"api": find_free_port(), "flower": find_free_port(), "redis": find_free_port()}
    api = f"http://127.0.0.1:{ports['api']}"
    flower = f"http://127.0.0.1:{ports['flower']}"
    log_path = tmp_path / "stack.log"
    demo_ids = tmp_path / "demo_ids.txt"
    demo_ids.write_text(
        "".join(f"{line}\n" for line in DIXIE_PARCEL_IDS.read_text().split()[:DEMO_TASKS])
    )
    demo_env = {"GATEWAY_LOCAL_DEMO_IDS": str(demo_ids), "GATEWAY_DEMO_SCRAPE_DELAY_S": "0.2"}

    stack = start_stack(
        tmp_path / "data", ports, log_path, broker_url=broker_url, extra_env=demo_env
    )
    try:
        wait_for(lambda: is_healthy(f"{api}/health"), timeout_s=90, what="the API")
        workers = wait_for(
            lambda: both_workers(flower), timeout_s=60, what="scrape and service workers"
        )
        assert sorted(name.split("@")[0] for name in workers) == ["scrape", "service"]
        assert httpx.get(f"{api}/health/ready", timeout=5).json()["status"] == "ready"
        assert httpx.get(f"{flower}/api/workers", timeout=5).status_code == 401
        if broker_url is not None:  # the stack's workers answer on the configured broker
            answers = app.control.ping(destination=workers, timeout=2)
            assert sorted(name for answer in answers for name in answer) == sorted(workers)
        # The demo: its parcels are worked by both kinds of worker and arrive in search.
        wait_for(lambda: demo_drained(api), timeout_s=120, what="the demo tasks to finish")
        assert workers_by_kind(tmp_path / "data") == {"celery", "http"}
        found = httpx.get(f"{api}/v1/search", params={"state": "FL", "county": "dixie"}).json()
        assert found["items"], found
    finally:
        exit_code = stop_with_ctrl_c(stack)
        if broker_url is not None:
            purge_stack_queues()
    log = log_path.read_text()
    assert exit_code == 0, log
    assert "Taxlien Gateway is up" in log
    assert "Traceback" not in log

    restarted = start_stack(
        tmp_path / "data", ports, log_path, broker_url=broker_url, extra_env=demo_env
    )
    try:
        wait_for(lambda: is_healthy(f"{api}/health"), timeout_s=90, what="the API again")
        wait_for(  # the demo is queued once per data folder
            lambda: "demo: tasks were queued on an earlier run" in log_path.read_text(),
            what="the restarted stack to find its demo queued",
        )
        assert demo_drained(api)
    finally:
        assert stop_with_ctrl_c(restarted) == 0
        if broker_url is not None:
            purge_stack_queues()
    assert (tmp_path / "data" / "postgres" / "PG_VERSION").exists()
    assert log_path.read_text().count("Running upgrade  -> 0001") == 1
