"""Every Grafana panel reads a metric that the system really emits, and says what it shows.

The API's series are served here; each panel's series moving under real actions, Flower's
from a real Flower, is shown in tests/test_dashboard_metrics.py; the summary row's queries
against a running API process in tests/test_dashboard_summary.py.
"""

from __future__ import annotations

import json
import re
from typing import Any

from fastapi.testclient import TestClient

from tests.celery_workers import REPO_ROOT

DASHBOARD = REPO_ROOT / "ops" / "grafana" / "dashboards" / "gateway.json"
METRIC_TOKEN = re.compile(r"\b(?:gateway|flower)_[a-z_]+\b")
# The suffixes of a histogram's series (its "# TYPE" line names the family without them).
SERIES_SUFFIXES = ("_bucket", "_count", "_sum")


def dashboard_panels() -> list[dict[str, Any]]:
    """The panels that show data (rows only group them)."""
    dashboard = json.loads(DASHBOARD.read_text())
    return [panel for panel in dashboard["panels"] if panel["type"] != "row"]


def dashboard_expressions() -> list[tuple[str, str]]:
    return [
        (panel["title"], target["expr"])
        for panel in dashboard_panels()
        for target in panel["targets"]
    ]


def family_name(token: str) -> str:
    for suffix in SERIES_SUFFIXES:
        if token.endswith(suffix):
            return token.removesuffix(suffix)
    return token


def served_families(metrics_text: str) -> set[str]:
    return {line.split()[2] for line in metrics_text.splitlines() if line.startswith("# TYPE")}


def test_the_api_metrics_endpoint_serves_the_dashboard_gateway_series(
    api_client: TestClient,
) -> None:
    served = served_families(api_client.get("/metrics").text)
    wanted = {
        family_name(token)
        for _, expr in dashboard_expressions()
        for token in METRIC_TOKEN.findall(expr)
        if token.startswith("gateway_")
    }
    assert wanted <= served, wanted - served


def test_every_panel_has_a_description_a_unit_and_a_query() -> None:
    for panel in dashboard_panels():
        assert panel.get("description", "").strip(), panel["title"]
        assert panel["fieldConfig"]["defaults"].get("unit"), panel["title"]
        assert panel["targets"] and all(t["expr"].strip() for t in panel["targets"])


def test_the_dashboard_has_a_summary_row_a_platform_variable_and_links() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    first_row, *rest = dashboard["panels"]
    summary = rest[: next(i for i, p in enumerate(rest) if p["type"] == "row")]
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    links = " ".join(link["url"] for link in dashboard["links"])

    assert first_row["type"] == "row" and first_row["title"] == "Summary"
    assert [p["type"] for p in summary] == ["stat"] * 6
    assert variables["platform"]["includeAll"] and variables["platform"]["multi"]
    assert "${flower_url}" in links and "/docs" in links
    assert any("$platform" in expr for _, expr in dashboard_expressions())
