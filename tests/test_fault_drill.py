"""The short fault drill (``python -m bench faults --short``), on the run's broker kind.

Over a thousand tasks drain through Celery nodes and HTTP workers while every kind of fault
happens at least once: whole nodes, pool children, HTTP workers, the service node, the API and
beat killed with SIGKILL, Redis killed and started again from its append-only file,
PostgreSQL crashed for 10 s and, on the RabbitMQ run, RabbitMQ killed and started again. The
drill runs on servers of its own (it breaks them) and exits non-zero on any loss; its JSON
report says what happened.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.drill_servers import rabbitmq_is_installed
from tests.celery_workers import REPO_ROOT

pytestmark = pytest.mark.broker
DRILL_TIMEOUT_S = 600


def _broker_kind() -> str:
    return (
        "rabbitmq" if os.environ.get("GATEWAY_TEST_BROKER_URL", "").startswith("amqp") else "redis"
    )


def run_drill(command: list[str]) -> tuple[int, str]:
    """Run the drill; past the timeout it gets SIGTERM, so it still stops its fleet and
    servers (its own processes, which a SIGKILL would leave running)."""
    drill = subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)  # fmt: skip
    try:
        output, _ = drill.communicate(timeout=DRILL_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        drill.terminate()
        try:
            output, _ = drill.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            drill.kill()
            output, _ = drill.communicate()
        raise AssertionError(f"the drill ran past {DRILL_TIMEOUT_S}s:\n{output}") from None
    return drill.returncode, output


def test_the_short_fault_drill_loses_nothing(tmp_path: Path) -> None:
    broker = _broker_kind()
    if broker == "rabbitmq" and not rabbitmq_is_installed():
        pytest.skip("the RabbitMQ drill starts its own node: rabbitmq-server is not installed")
    report_path = tmp_path / "report.json"
    command = [sys.executable, "-m", "bench", "faults", "--short", "--broker", broker,
               "--work-dir", str(tmp_path / "drill"), "--json", str(report_path)]  # fmt: skip

    returncode, output = run_drill(command)

    assert returncode == 0, output
    report = json.loads(report_path.read_text())
    assert report["is_clean"] and report["problems"] == [], output
    expected_faults = {"scrape_node", "pool_children", "http_worker", "service_node", "api",
                       "beat", "redis_restart", "postgres_outage"}  # fmt: skip
    if broker == "rabbitmq":
        expected_faults.add("rabbitmq_restart")
    assert expected_faults <= {kind for kind, count in report["faults"].items() if count}, output
    findings = report["findings"]
    assert findings["enqueued"] >= 1000
    plan, by_status = report["plan"], findings["by_status"]
    # Failing on purpose (retryable or not) ended dead, the poison results were kept as
    # rejects, every other task became a parcel unless the faults used up its attempts.
    parcels_dead = findings["parcels_dead_under_faults"]
    assert by_status == {
        "succeeded": plan["parcels"] - parcels_dead + plan["each_special"],
        "dead": 2 * plan["each_special"] + parcels_dead,
    }, output
    assert findings["poison_rejected"] == plan["each_special"], output
    assert findings["outbox_left"] == 0, output
