"""Task outcome figures for ``/metrics``, read from the Redis totals at scrape time.

Every process (API and Celery children) adds to the same totals, and every API process
exports all of them: a dashboard that scrapes several API processes aggregates these series
with ``max``, never ``sum``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import redis
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from gateway_api.metrics import register_live_collector
from services.dispatch.outcome_metrics import (
    DUPLICATES_DROPPED_KEY,
    ENQUEUED_KEY,
    FENCED_OFF_KEY,
    FINISHED_KEY,
    LEASE_LOSS_REASONS,
    LEASES_EXPIRED_KEY,
    RUN_BUCKETS_S,
    RUN_KEY,
    WAIT_BUCKETS_S,
    WAIT_KEY,
    DeliveryPath,
    FencedAction,
    TaskOutcome,
)
from services.metrics_redis import decode_text, metrics_redis
from services.redis_histograms import (
    LABEL_SEPARATOR,
    HistogramFigures,
    read_histograms,
    zero_histogram,
)

logger = logging.getLogger(__name__)
_COUNTER_KEYS = (
    FINISHED_KEY,
    ENQUEUED_KEY,
    LEASES_EXPIRED_KEY,
    FENCED_OFF_KEY,
    DUPLICATES_DROPPED_KEY,
)


@dataclass
class OutcomeFigures:
    counters: dict[str, dict[tuple[str, ...], float]] = field(default_factory=dict)  # by key
    waits: dict[str, HistogramFigures] = field(default_factory=dict)  # by platform
    runs: dict[str, HistogramFigures] = field(default_factory=dict)


def read_outcome_figures(client: redis.Redis) -> OutcomeFigures:
    pipe = client.pipeline(transaction=False)
    for key in (*_COUNTER_KEYS, WAIT_KEY, RUN_KEY):
        pipe.hgetall(key)
    *counters_raw, waits_raw, runs_raw = pipe.execute()
    figures = OutcomeFigures(
        waits=read_histograms(waits_raw, WAIT_BUCKETS_S),
        runs=read_histograms(runs_raw, RUN_BUCKETS_S),
    )
    for key, raw in zip(_COUNTER_KEYS, counters_raw, strict=True):
        figures.counters[key] = {
            tuple(decode_text(name).split(LABEL_SEPARATOR)): float(value)
            for name, value in raw.items()
        }
    return figures


def outcome_metric_families(
    figures: OutcomeFigures, platforms: Sequence[str] = ()
) -> Iterator[Metric]:
    """``platforms`` (the enabled ones) get a 0 for every series they can have: a counter
    that first appears at 1 loses that 1 from every rate, and a rate with no series is "no
    data" rather than 0."""
    counters = figures.counters
    yield _counter(
        "gateway_tasks_finished",
        "Task attempts finished, HTTP and Celery alike, by outcome "
        "(succeeded, retried, dead, cancelled); global: aggregate with max",
        ["platform", "outcome"],
        _zero_filled(counters.get(FINISHED_KEY, {}), platforms, [o.value for o in TaskOutcome]),
    )
    yield _counter(
        "gateway_tasks_enqueued",
        "Tasks written to the ledger by enqueue; global: aggregate with max",
        ["platform"],
        _zero_filled(counters.get(ENQUEUED_KEY, {}), platforms),
    )
    yield _counter(
        "gateway_leases_expired",
        "Leases and Celery runs taken back from a silent holder, by reason; global",
        ["platform", "reason"],
        _zero_filled(counters.get(LEASES_EXPIRED_KEY, {}), platforms, LEASE_LOSS_REASONS),
    )
    yield _counter(
        "gateway_fenced_off",
        "Complete, fail or extend calls refused: the caller no longer holds the lease; global",
        ["platform", "action"],
        _zero_filled(counters.get(FENCED_OFF_KEY, {}), platforms, [a.value for a in FencedAction]),
    )
    yield _counter(
        "gateway_duplicate_deliveries_dropped",
        "Scrape messages dropped because their task was no longer queued or not in the "
        "ledger (redeliveries after a fault, re-publish races, foreign messages), by path "
        "(celery, http); global",
        ["path"],
        {(path.value,): 0.0 for path in DeliveryPath} | counters.get(DUPLICATES_DROPPED_KEY, {}),
    )
    yield _histogram(
        "gateway_task_wait_seconds",
        "Seconds from a task's publish to its queue until a worker started it, by platform; "
        "observed when the attempt ends",
        {p: zero_histogram(WAIT_BUCKETS_S) for p in platforms} | figures.waits,
    )
    yield _histogram(
        "gateway_task_run_seconds",
        "Seconds from a worker's start of a task attempt to its end, by platform (a Celery "
        "scrape ends when its result is ingested)",
        {p: zero_histogram(RUN_BUCKETS_S) for p in platforms} | figures.runs,
    )


def _zero_filled(
    values: dict[tuple[str, ...], float],
    platforms: Sequence[str],
    second_labels: Sequence[str] | None = None,
) -> dict[tuple[str, ...], float]:
    zeros: dict[tuple[str, ...], float]
    if second_labels is None:
        zeros = {(platform,): 0.0 for platform in platforms}
    else:
        zeros = {(platform, label): 0.0 for platform in platforms for label in second_labels}
    return zeros | values


def _counter(
    name: str, documentation: str, labels: list[str], values: dict[tuple[str, ...], float]
) -> CounterMetricFamily:
    family = CounterMetricFamily(name, documentation, labels=labels)
    for label_values, value in sorted(values.items()):
        if len(label_values) == len(labels):
            family.add_metric(list(label_values), value)
    return family


def _histogram(
    name: str, documentation: str, by_platform: dict[str, HistogramFigures]
) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, documentation, labels=["platform"])
    for platform, figures in sorted(by_platform.items()):
        family.add_metric([platform], figures.cumulative, figures.total)
    return family


class OutcomeCollector(Collector):
    def __init__(
        self,
        client_factory: Callable[[], redis.Redis],
        platforms: Callable[[], Sequence[str]] = tuple,
    ) -> None:
        self._client_factory, self._platforms = client_factory, platforms

    def collect(self) -> Iterator[Metric]:
        try:
            figures = read_outcome_figures(self._client_factory())
        except redis.RedisError as exc:
            logger.warning("task outcome metrics unavailable: %s", exc)
            return
        yield from outcome_metric_families(figures, self._platforms())

    def describe(self) -> Iterator[Metric]:
        # Names only, so registering the collector does not read Redis.
        yield from outcome_metric_families(OutcomeFigures())


_collector: OutcomeCollector | None = None


def install_outcome_metrics(platforms: Callable[[], Sequence[str]]) -> OutcomeCollector:
    """Register the collector once per process (create_app may run more than once);
    ``platforms`` names the enabled platforms, whose series start at 0."""
    global _collector
    if _collector is None:
        _collector = OutcomeCollector(metrics_redis, platforms)
        register_live_collector(_collector)
    return _collector
