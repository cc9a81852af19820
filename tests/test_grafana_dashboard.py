"""Every Grafana panel reads a metric that the system really emits.

The API's series are served here; each panel's series moving under real actions, Flower's
from a real Flower, is shown in tests/test_dashboard_metrics.py.
"""

from __future__ import annotations

import json
import re

from fastapi.testclient import TestClient

from tests.celery_workers import REPO_ROOT

DASHBOARD = REPO_ROOT / "ops" / "grafana" / "dashboards" / "gateway.json"
METRIC_TOKEN = re.compile(r"\b(?:gateway|flower)_[a-z_]+\b")


def dashboard_expressions() -> list[tuple[str, str]]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [
        (panel["title"], target["expr"])
        for panel in dashboard["panels"]
        for target in panel["targets"]
    ]


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
