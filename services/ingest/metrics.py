"""Ingest counters kept in Redis, so figures made in any worker process reach the API's /metrics.

Celery prefork children come and go; a process-local prometheus Counter there would be lost
or never scraped. Each finished chunk adds its counts with HINCRBY (after its commit, so a
rolled-back attempt is not counted) and the API exports the totals through a collector.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from functools import lru_cache

import redis
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from settings import get_settings

logger = logging.getLogger(__name__)

ROWS_KEY = "gateway:metrics:ingest_rows"  # outcome -> rows
UNPARSED_KEY = "gateway:metrics:ingest_unparsed"  # typed column -> values
OUTCOMES = ("inserted", "updated", "unchanged", "stale", "rejected")
METRICS_REDIS_TIMEOUT_S = 2.0


@lru_cache(maxsize=1)
def metrics_redis() -> redis.Redis:
    """One client per process; metrics are best effort, so an unreachable Redis must not hold
    up an ingest or a request for long."""
    return redis.Redis.from_url(
        get_settings().cache_url,
        socket_connect_timeout=METRICS_REDIS_TIMEOUT_S,
        socket_timeout=METRICS_REDIS_TIMEOUT_S,
    )


def record_ingest_counts(
    client: redis.Redis, counts: Mapping[str, int], unparsed: Mapping[str, int]
) -> None:
    """Add one chunk's row outcomes and unparsed values to the shared totals."""
    pipe = client.pipeline(transaction=False)
    for outcome, rows in counts.items():
        if rows:
            pipe.hincrby(ROWS_KEY, outcome, rows)
    for column, values in unparsed.items():
        if values:
            pipe.hincrby(UNPARSED_KEY, column, values)
    pipe.execute()


def record_ingest_counts_safely(
    client: redis.Redis, counts: Mapping[str, int], unparsed: Mapping[str, int]
) -> None:
    """``record_ingest_counts``, but a Redis outage costs only these figures, logged: the
    rows are already committed and the caller's answer must not depend on a counter."""
    try:
        record_ingest_counts(client, counts, unparsed)
    except redis.RedisError as exc:
        logger.warning("ingest counters not recorded (%s): %s", exc, dict(counts))


def read_ingest_counts(client: redis.Redis) -> tuple[dict[str, int], dict[str, int]]:
    """(rows by outcome, unparsed values by column); every outcome present, 0 if none yet."""
    pipe = client.pipeline(transaction=False)
    pipe.hgetall(ROWS_KEY)
    pipe.hgetall(UNPARSED_KEY)
    rows_raw, unparsed_raw = pipe.execute()
    rows = dict.fromkeys(OUTCOMES, 0)
    rows.update({_text(k): int(v) for k, v in rows_raw.items()})
    return rows, {_text(k): int(v) for k, v in unparsed_raw.items()}


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class IngestMetricsCollector(Collector):
    """Exports the Redis totals as ``gateway_ingest_rows_total{outcome}`` and
    ``gateway_ingest_unparsed_values_total{field}``."""

    def __init__(self, client_factory: Callable[[], redis.Redis]) -> None:
        self._client_factory = client_factory

    def collect(self) -> Iterator[Metric]:
        try:
            rows, unparsed = read_ingest_counts(self._client_factory())
        except redis.RedisError as exc:
            # A scrape without these series beats a failed scrape of every other metric.
            logger.warning("ingest metrics unavailable: %s", exc)
            return
        yield from ingest_metric_families(rows, unparsed)

    def describe(self) -> Iterator[Metric]:
        # Names only, so registering the collector does not read Redis.
        yield from ingest_metric_families({}, {})


def ingest_metric_families(rows: dict[str, int], unparsed: dict[str, int]) -> Iterator[Metric]:
    rows_family = CounterMetricFamily(
        "gateway_ingest_rows", "Result rows ingested, by outcome", labels=["outcome"]
    )
    for outcome, value in sorted(rows.items()):
        rows_family.add_metric([outcome], value)
    yield rows_family
    unparsed_family = CounterMetricFamily(
        "gateway_ingest_unparsed_values",
        "Scraped values that did not parse into their typed column (kept in data)",
        labels=["field"],
    )
    for column, value in sorted(unparsed.items()):
        unparsed_family.add_metric([column], value)
    yield unparsed_family
