"""Dispatch figures for ``/metrics``, read from the ledger and the registry at scrape time.

A custom collector rather than gauges set as things happen: every process reports the same
true figures, whatever it did itself, and nothing drifts after a restart.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy.exc import SQLAlchemyError

from db.models import TaskStatus
from db.session import session_scope
from gateway_api.ledger_metrics import ledger_metric_families
from gateway_api.metrics import register_live_collector
from gateway_api.outcome_metrics import install_outcome_metrics
from gateway_api.politeness_metrics import install_rate_limit_metrics
from gateway_api.service_metrics import install_service_metrics
from gateway_api.timed_cache import TimedCache
from services.dispatch.failures import FailureReason
from services.dispatch.ledger_stats import DispatchFigures, read_dispatch_figures
from services.queues import PRIORITIES
from settings import get_settings

logger = logging.getLogger(__name__)


def _read_figures() -> DispatchFigures:
    with session_scope() as session:
        return read_dispatch_figures(
            session, now=datetime.now(UTC), stale_s=get_settings().heartbeat_stale_s
        )


# The ledger is read at most once per GATEWAY_METRICS_CACHE_S, however often /metrics is hit.
dispatch_figures = TimedCache(_read_figures, max_age_s=lambda: get_settings().metrics_cache_s)


def enabled_platforms() -> list[str]:
    """From the cached ledger figures; none while the database cannot be read."""
    try:
        return dispatch_figures.get().enabled_platforms
    except SQLAlchemyError:
        return []


class DispatchCollector(Collector):
    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            figures = dispatch_figures.get()
        except SQLAlchemyError as exc:
            logger.warning("dispatch metrics unavailable: %s", exc)
            return
        yield from dispatch_metric_families(figures)

    def describe(self) -> Iterator[GaugeMetricFamily]:
        # Names only, so registering the collector does not query the database.
        yield from dispatch_metric_families(DispatchFigures())


def dispatch_metric_families(figures: DispatchFigures) -> Iterator[GaugeMetricFamily]:
    depth = GaugeMetricFamily(
        "gateway_queue_depth",
        "Tasks waiting to be taken (ledger status queued), by platform and priority",
        labels=["platform", "priority"],
    )
    held = GaugeMetricFamily(
        "gateway_tasks_in_progress",
        "Tasks held by a worker: leased (HTTP) or running (Celery)",
        labels=["platform", "kind"],
    )
    retrying = GaugeMetricFamily(
        "gateway_retry_wait_tasks", "Tasks waiting for their retry", labels=["platform"]
    )
    dead = GaugeMetricFamily(
        "gateway_dead_letters", "Dead-lettered tasks", labels=["platform", "reason"]
    )
    workers = GaugeMetricFamily(
        "gateway_workers", "HTTP workers in the registry by state", labels=["state"]
    )
    sums = _zero_series(figures.enabled_platforms)
    for (platform, priority, status), n in figures.tasks_by_status.items():
        if status == TaskStatus.QUEUED.value:
            key: tuple[str, ...] = ("queued", platform, str(priority))
        elif status == TaskStatus.RETRY_WAIT.value:
            key = ("retry", platform)
        else:
            key = ("held", platform, "http" if status == TaskStatus.LEASED.value else "celery")
        sums[key] = sums.get(key, 0) + n
    for key, n in sorted(sums.items()):
        family = {"queued": depth, "retry": retrying, "held": held}[key[0]]
        family.add_metric(list(key[1:]), n)
    dead_letters = {(p, r.value): 0 for p in figures.enabled_platforms for r in FailureReason}
    dead_letters.update(figures.dead_by_reason)
    for (platform, reason), n in sorted(dead_letters.items()):
        dead.add_metric([platform, reason], n)
    for state, n in sorted(figures.workers.items()):
        workers.add_metric([state], n)
    yield from (depth, held, retrying, dead, workers)
    yield from ledger_metric_families(figures)


def _zero_series(platforms: list[str]) -> dict[tuple[str, ...], int]:
    """A 0 for every series an enabled platform can have, so a drained one stays reported.

    A series that vanishes at zero leaves gaps in graphs and turns alerts to "no data".
    """
    sums: dict[tuple[str, ...], int] = {}
    for platform in platforms:
        sums.update({("queued", platform, str(priority)): 0 for priority in PRIORITIES})
        sums.update({("held", platform, "http"): 0, ("held", platform, "celery"): 0})
        sums[("retry", platform)] = 0
    return sums


_collector: DispatchCollector | None = None


def install_dispatch_metrics() -> DispatchCollector:
    """Register the collectors once per process (create_app may run more than once): the
    ledger's figures, the task outcome totals, readiness, the service queues and the rate
    limits in force."""
    global _collector
    install_outcome_metrics(enabled_platforms)
    install_service_metrics()
    install_rate_limit_metrics()
    if _collector is None:
        _collector = DispatchCollector()
        register_live_collector(_collector)
    return _collector
