"""Several API processes behind one port (``GATEWAY_API_WORKERS``): each request is counted
once in ``/metrics``, whichever process served it and whichever is scraped."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.api_process import serve_api_process
from tests.waiting import wait_for

HEALTH_REQUESTS = re.compile(
    r'^gateway_requests_total\{[^}]*path="/health"[^}]*\} ([0-9.e+]+)$', re.M
)


@pytest.fixture
def two_api_processes(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    multiprocess = {"GATEWAY_API_WORKERS": "2", "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
    for url in serve_api_process(tmp_path, multiprocess):
        yield url, metrics_dir


def _health_requests_counted(url: str) -> float:
    body = httpx.get(f"{url}/metrics", timeout=10).text
    return sum(float(value) for value in HEALTH_REQUESTS.findall(body))


def test_two_api_processes_count_every_request_once_whichever_serves_it(
    two_api_processes: tuple[str, Path],
) -> None:
    url, metrics_dir = two_api_processes
    before = _health_requests_counted(url)
    sent = 0

    def both_processes_served() -> bool:
        nonlocal sent
        for _ in range(20):  # a new connection each: the kernel spreads them over the two
            assert httpx.get(f"{url}/health", timeout=5).status_code == 200
            sent += 1
        return len(list(metrics_dir.glob("counter_*.db"))) >= 2

    wait_for(both_processes_served, timeout_s=60, interval_s=0, what="both processes serving")

    # Each scrape is answered by either process; both see the whole count.
    assert {_health_requests_counted(url) - before for _ in range(6)} == {sent}
