"""Every Grafana panel reads a metric that the system really emits (the API or Flower)."""

from __future__ import annotations

import json
import re

from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from tests.celery_workers import REPO_ROOT

DASHBOARD = REPO_ROOT / "ops" / "grafana" / "dashboards" / "gateway.json"
METRIC_TOKEN = re.compile(r"\b(?:gateway|flower)_[a-z_]+\b")
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}


def emitted_metric_names() -> set[str]:
    """Series names the API's registry serves, with Flower's metrics registered beside them."""
    from flower.events import get_prometheus_metrics

    get_prometheus_metrics()
    names: set[str] = set()
    for family in REGISTRY.collect():
        names.add(family.name)
        names.update(family.name + suffix for suffix in SUFFIXES.get(family.type, ("",)))
        names.update(sample.name for sample in family.samples)
    return names


def dashboard_expressions() -> list[tuple[str, str]]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [
        (panel["title"], target["expr"])
        for panel in dashboard["panels"]
        for target in panel["targets"]
    ]


def test_every_panel_queries_a_metric_the_system_emits(api_client: TestClient) -> None:
    api_client.get("/health")
    emitted = emitted_metric_names()
    expressions = dashboard_expressions()
    assert expressions

    unknown = {
        (title, token)
        for title, expr in expressions
        for token in METRIC_TOKEN.findall(expr)
        if token not in emitted
    }
    assert unknown == set()
    assert all(METRIC_TOKEN.search(expr) for _, expr in expressions)


def test_the_api_metrics_endpoint_serves_the_dashboard_gateway_series(
    api_client: TestClient,
) -> None:
    text = api_client.get("/metrics").text
    served = {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE")}
    wanted = {
        token.removesuffix("_bucket")
        for _, expr in dashboard_expressions()
        for token in METRIC_TOKEN.findall(expr)
        if token.startswith("gateway_")
    }
    assert wanted <= served
