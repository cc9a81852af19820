"""A real API process (``python -m gateway_api``) on the test servers, for tests that need
the running service: the CLI's API mode, a scrape of ``/metrics`` over HTTP."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx

from gateway_localstack.servers import find_free_port
from tests.celery_workers import REPO_ROOT
from tests.waiting import wait_for


def serve_api_process(work_dir: Path, extra_env: dict[str, str] | None = None) -> Iterator[str]:
    """Starts the API; yields its address until the generator is closed."""
    port = find_free_port()
    log_path = work_dir / "api.log"
    env = {
        **os.environ,
        "GATEWAY_HOST": "127.0.0.1",
        "GATEWAY_PORT": str(port),
        **(extra_env or {}),
    }
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "gateway_api"],
            cwd=REPO_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    address = f"http://127.0.0.1:{port}"

    def is_up() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"the API exited:\n{log_path.read_text(errors='replace')}")
        try:
            return httpx.get(f"{address}/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_for(is_up, timeout_s=60, what="the API process to answer")
        yield address
    finally:
        process.terminate()
        process.wait(timeout=20)
