"""Serve an app in its own process for a bench run: the gateway (``python -m gateway_api``) or
the old design's rebuild (``python -m bench.legacy_gateway``), on a free loopback port."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx
import psutil

from bench.environment import REPO_ROOT
from gateway_localstack.servers import find_free_port

WORKER_TOKEN = secrets.token_urlsafe(24)
ADMIN_TOKEN = secrets.token_urlsafe(24)
GATEWAY_COMMAND = ("-m", "gateway_api")
LEGACY_COMMAND = ("-m", "bench.legacy_gateway")


@contextmanager
def api_process(
    command: Sequence[str] = GATEWAY_COMMAND, *, extra_env: dict[str, str] | None = None
) -> Iterator[tuple[str, psutil.Process]]:
    """Start the app, wait for ``/health``, yield its URL and process; stop it afterwards."""
    port = find_free_port()
    env = {
        **os.environ,
        "GATEWAY_HOST": "127.0.0.1",
        "GATEWAY_PORT": str(port),
        "GATEWAY_LOG_LEVEL": "WARNING",
        "GATEWAY_WORKER_TOKENS": WORKER_TOKEN,
        "GATEWAY_ADMIN_TOKENS": ADMIN_TOKEN,
        **(extra_env or {}),
    }
    log_path = Path(tempfile.mkdtemp(prefix="taxlien-bench-api-")) / "api.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, *command], cwd=REPO_ROOT, env=env, stdout=log, stderr=log
        )
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_until_up(url, process, log_path)
            yield url, psutil.Process(process.pid)
        finally:
            # uvicorn lets requests in progress finish: a long poll may hold it a while.
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


def _wait_until_up(url: str, process: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the API process exited at start; see {log_path}")
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"the API process did not come up within 60 s; see {log_path}")


def cpu_seconds(processes: Sequence[psutil.Process]) -> float:
    """CPU time of the processes and their children (uvicorn workers are children)."""
    total = 0.0
    for process in processes:
        for member in (process, *process.children(recursive=True)):
            try:
                times = member.cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += times.user + times.system
    return total
