"""Ledger gauges for ``/metrics``: how long the oldest queued task has waited, and the
ledger's balance (enqueued = succeeded + dead + cancelled + active).

Global figures read from the database: every API process reports the same values, so the
dashboard and the alerts aggregate them with ``max``.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily

from services.dispatch.ledger_stats import DispatchFigures
from services.queues import PRIORITIES


def ledger_metric_families(figures: DispatchFigures) -> Iterator[GaugeMetricFamily]:
    oldest = GaugeMetricFamily(
        "gateway_oldest_queued_age_seconds",
        "Seconds the oldest queued task has waited in its queue (0: none queued); global: "
        "aggregate with max",
        labels=["platform", "priority"],
    )
    ages = {(p, prio): 0.0 for p in figures.enabled_platforms for prio in PRIORITIES}
    if figures.now is not None:
        for key, since in figures.oldest_queued_at.items():
            ages[key] = max((figures.now - since).total_seconds(), 0.0)
    for (platform, priority), age in sorted(ages.items()):
        oldest.add_metric([platform, str(priority)], age)
    yield oldest
    ledger = GaugeMetricFamily(
        "gateway_ledger_tasks",
        "The ledger's balance: enqueued (every row) = succeeded + dead + cancelled + active; "
        "global: aggregate with max",
        labels=["term"],
    )
    for term, n in sorted(figures.ledger.items()):
        ledger.add_metric([term], n)
    yield ledger
