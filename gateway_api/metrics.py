"""The API's own Prometheus metrics. Route labels are templates, never raw paths."""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.registry import Collector

REQUESTS = Counter(
    "gateway_requests_total", "HTTP requests by route template", ["method", "path", "status"]
)
REQUEST_DURATION = Histogram(
    "gateway_request_duration_seconds",
    "HTTP request latency by route template",
    ["method", "path"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
COMPLETE_GROUP_SIZE = Histogram(
    "gateway_complete_group_size",
    "Single completes written per transaction by the group commit (1: no grouping)",
    buckets=(1, 2, 5, 10, 25, 50, 100, 250, 500),
)
COMPLETE_GROUPS_SPLIT = Counter(
    "gateway_complete_groups_split_total",
    "Groups of completes held up by a row locked elsewhere, or a deadlock, and written again"
    " call by call",
)
UNMATCHED_ROUTE = "<unmatched>"
# Collectors that read true figures at scrape time (ledger, Redis); served in both modes.
LIVE_COLLECTORS: list[Collector] = []


def register_live_collector(collector: Collector) -> None:
    if collector not in LIVE_COLLECTORS:
        LIVE_COLLECTORS.append(collector)
        REGISTRY.register(collector)


def render_metrics() -> tuple[bytes, str]:
    # prometheus_client's own switch: set when the API runs several processes.
    if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        for collector in LIVE_COLLECTORS:
            registry.register(collector)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST
