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
