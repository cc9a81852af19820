"""The Prometheus alert rules load, and every expression reads a metric that is emitted.

Checked with ``promtool check rules`` where Prometheus's tools are installed; everywhere, the
file is parsed and its structure checked, and its metric names are compared with the API's
``/metrics`` (gateway series) and the dashboard's Flower series (shown moving under a real
Flower in tests/test_dashboard_metrics.py).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient

from tests.celery_workers import REPO_ROOT
from tests.test_grafana_dashboard import (
    METRIC_TOKEN,
    dashboard_expressions,
    family_name,
    served_families,
)

RULES = REPO_ROOT / "ops" / "prometheus" / "alerts.yml"
DURATION = re.compile(r"^\d+[smhdw]$")
SEVERITIES = {"warning", "critical"}
# What the issue asks an operator to be told about, by the alert that tells it.
WANTED_ALERTS = {
    "GatewayDeadLettersRising",  # dead letters rising
    "GatewayQueuedTaskTooOld",  # oldest queued task older than a threshold
    "GatewayIngestStalled",  # no ingest progress while results are queued
    "GatewayHttpWorkersStale",  # workers gone stale
    "GatewayCeleryWorkersGone",
    "GatewayHigh5xxRate",  # 5xx rate
    "GatewayNotReady",  # readiness failing
}


def alert_rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(RULES.read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")
def test_promtool_accepts_the_rules() -> None:
    checked = subprocess.run(
        ["promtool", "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_rules_parse_and_each_alert_is_complete() -> None:
    document = yaml.safe_load(RULES.read_text())
    rules = alert_rules()
    names = [rule["alert"] for rule in rules]

    assert [group["name"] for group in document["groups"]] == ["taxlien-gateway"]
    assert len(names) == len(set(names))
    assert set(names) >= WANTED_ALERTS
    for rule in rules:
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule["alert"]
        assert DURATION.match(rule["for"]), rule["alert"]
        assert rule["labels"]["severity"] in SEVERITIES, rule["alert"]
        assert rule["annotations"]["summary"].strip(), rule["alert"]
        expr = rule["expr"]
        assert expr.count("(") == expr.count(")") and expr.count("{") == expr.count("}")


def test_every_rule_reads_an_emitted_metric(api_client: TestClient) -> None:
    served = served_families(api_client.get("/metrics").text)
    flower_series = {
        token
        for _, expr in dashboard_expressions()
        for token in METRIC_TOKEN.findall(expr)
        if token.startswith("flower_")
    }
    for rule in alert_rules():
        tokens = METRIC_TOKEN.findall(rule["expr"])
        assert tokens or "up{" in rule["expr"], rule["alert"]
        for token in tokens:
            known = flower_series if token.startswith("flower_") else served
            assert family_name(token) in known or token in known, (rule["alert"], token)


def test_prometheus_loads_the_rules_file_that_compose_mounts() -> None:
    config = yaml.safe_load((REPO_ROOT / "ops" / "prometheus.yml").read_text())
    compose = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
    mounts = compose["services"]["prometheus"]["volumes"]

    (rule_file,) = config["rule_files"]
    assert f"./ops/prometheus/alerts.yml:{rule_file}:ro" in mounts


AGING_QUEUE_ALERT = {
    "exp_labels": {"severity": "warning", "platform": "qpublic", "priority": "3"},
    "exp_annotations": {
        "summary": "qpublic p3: oldest queued task waited 1h 20m 0s",
        "description": "Check `gatewayctl queues depth` and whether any worker (Celery or "
        "HTTP) takes this platform.",
    },
}
INGEST_STALLED_ALERT = {
    "exp_labels": {"severity": "critical"},
    "exp_annotations": {
        "summary": "25 result messages queued for ingest, none written in 10 minutes",
        "description": "Is the service worker (ingest queue) running, and is PostgreSQL reachable?",
    },
}
NOT_READY_ALERT = {
    "exp_labels": {"severity": "critical", "check": "database"},
    "exp_annotations": {
        "summary": "The API cannot reach its database",
        "description": "/health/ready answers 503 while this lasts; load balancers take the "
        "API out.",
    },
}


def expected_alert(at: str, name: str, alert: dict[str, Any]) -> dict[str, Any]:
    return {"eval_time": at, "alertname": name, "exp_alerts": [alert]}


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")
def test_the_alerts_fire_on_an_aging_queue_a_stalled_ingest_and_a_failing_readiness(
    tmp_path: Path,
) -> None:
    # Two API processes report the same global figures: max keeps one alert per queue.
    aging = 'gateway_oldest_queued_age_seconds{{instance="{}", platform="qpublic", priority="3"}}'
    ingest = 'gateway_broker_queue_messages{{instance="{}", queue="ingest"}}'
    rows = 'gateway_ingest_rows_total{{instance="{}", outcome="inserted"}}'
    series = [
        *({"series": aging.format(i), "values": "3000+60x60"} for i in ("a", "b")),
        *({"series": ingest.format(i), "values": "25x60"} for i in ("a", "b")),
        *({"series": rows.format(i), "values": "100x60"} for i in ("a", "b")),
        {"series": 'gateway_readiness_check{instance="a", check="database"}', "values": "1 0x30"},
    ]
    tests = {
        "rule_files": [str(RULES)],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": series,
                "alert_rule_test": [
                    expected_alert("30m", "GatewayQueuedTaskTooOld", AGING_QUEUE_ALERT),
                    expected_alert("30m", "GatewayIngestStalled", INGEST_STALLED_ALERT),
                    expected_alert("10m", "GatewayNotReady", NOT_READY_ALERT),
                    {"eval_time": "30m", "alertname": "GatewayDeadLettersRising", "exp_alerts": []},
                ],
            }
        ],
    }
    test_file = tmp_path / "alerts_test.yml"
    test_file.write_text(yaml.safe_dump(tests))
    checked = subprocess.run(
        ["promtool", "test", "rules", str(test_file)], capture_output=True, text=True, timeout=60
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
