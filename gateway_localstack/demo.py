"""The local stack's demo: real parcel ids queued once on the ``demo`` platform, worked by the
Celery scrape worker and one reference HTTP worker side by side, with progress in the log."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import httpx

from gateway_localstack.processes import ChildProcess

logger = logging.getLogger("gateway_localstack")
DEMO_PLATFORM = "demo"
REFERENCE_WORKER_ID = "reference-http-1"
SEEDED_MARKER = "demo-seeded"


def reference_worker(api_url: str, worker_token: str) -> tuple[ChildProcess, dict[str, str]]:
    """The reference HTTP worker's process and the environment it adds (its own variables:
    it is deployed apart from the gateway). A short long poll keeps its drain on Ctrl-C
    inside the stack's stop timeout."""
    env = {
        "TAXLIEN_WORKER_GATEWAY_URL": api_url,
        "TAXLIEN_WORKER_TOKEN": worker_token,
        "TAXLIEN_WORKER_ID": REFERENCE_WORKER_ID,
    }
    command = [sys.executable, "-m", "worker_client", "--platforms", DEMO_PLATFORM,
               "--concurrency", "2", "--poll-wait", "10"]  # fmt: skip
    return ChildProcess("http-worker", command), env


def seed_demo_once(ids_path: Path, data_dir: Path, env: dict[str, str], cwd: Path) -> None:
    """Queue the ids of ``ids_path`` on ``demo`` (FL, Dixie) the first time the stack runs
    with this data folder; later runs leave the ledger as it is."""
    marker = data_dir / SEEDED_MARKER
    if marker.exists():
        logger.info("demo: tasks were queued on an earlier run (%s)", marker)
        return
    if not ids_path.is_file():
        logger.info("demo: no parcel ids at %s; nothing queued", ids_path)
        return
    command = [sys.executable, "-m", "cli", "enqueue", str(ids_path), "--platform",
               DEMO_PLATFORM, "--state", "FL", "--county", "dixie"]  # fmt: skip
    if subprocess.run(command, cwd=cwd, env=env, check=False).returncode == 0:
        marker.write_text(f"{ids_path}\n")
        logger.info("demo: queued the parcel ids of %s", ids_path)
    else:
        logger.warning("demo: queuing %s failed; see the enqueue lines above", ids_path)


def report_progress(api_url: str, admin_token: str) -> bool:
    """One progress line from the ledger; returns whether any task is still active."""
    try:
        response = httpx.get(
            f"{api_url}/admin/tasks/balance", headers={"X-Admin-Token": admin_token}, timeout=5
        )
        balance = response.json() if response.status_code == 200 else None
    except (httpx.HTTPError, ValueError):
        balance = None
    if not isinstance(balance, dict):
        return True  # no answer this time: ask again at the next report
    logger.info(
        "demo: %s succeeded, %s active, %s dead of %s tasks",
        balance.get("succeeded"),
        balance.get("active"),
        balance.get("dead"),
        balance.get("enqueued"),
    )
    return bool(balance.get("active"))
