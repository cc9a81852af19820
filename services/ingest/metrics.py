"""Ingest counters kept in Redis, so figures made in any worker process reach the API's /metrics.

Celery prefork children come and go; a process-local prometheus Counter there would be lost
or never scraped. Each finished chunk adds its counts with HINCRBY (after its commit, so a
rolled-back attempt is not counted) and the API exports the totals through a collector.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

import redis
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from db.models.ingest_rejects import RejectReason
from services.metrics_redis import decode_text
from services.redis_histograms import (
    HashIncrements,
    HistogramFigures,
    add_observation,
    read_histograms,
    zero_histogram,
)

logger = logging.getLogger(__name__)

ROWS_KEY = "gateway:metrics:ingest_rows"  # outcome -> rows
UNPARSED_KEY = "gateway:metrics:ingest_unparsed"  # typed column -> values
REJECTS_KEY = "gateway:metrics:ingest_rejects"  # reason code -> items
CHUNKS_KEY = "gateway:metrics:ingest_chunks"  # "chunks", "items": chunks written and their items
CHUNK_SIZE_KEY = "gateway:metrics:ingest_chunk_size"  # histogram (services.redis_histograms)
# Items per chunk written: one item a chunk means batching is not working.
CHUNK_SIZE_BUCKETS = (1.0, 5.0, 10.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0)
OUTCOMES = ("inserted", "updated", "unchanged", "stale", "rejected")


def record_ingest_counts(
    client: redis.Redis,
    counts: Mapping[str, int],
    unparsed: Mapping[str, int],
    rejects: Mapping[str, int] | None = None,
    *,
    chunk_items: int = 0,
) -> None:
    """Add one chunk's row outcomes, unparsed values and rejects to the shared totals."""
    increments = HashIncrements()
    if chunk_items:
        increments.add(CHUNKS_KEY, "chunks")
        increments.add(CHUNKS_KEY, "items", chunk_items)
        add_observation(increments, CHUNK_SIZE_KEY, "", chunk_items, CHUNK_SIZE_BUCKETS)
    for key, figures in ((ROWS_KEY, counts), (UNPARSED_KEY, unparsed), (REJECTS_KEY, rejects)):
        for name, value in (figures or {}).items():
            increments.add(key, name, value)
    pipe = client.pipeline(transaction=False)
    increments.queue_on(pipe)
    pipe.execute()


def record_ingest_counts_safely(
    client: redis.Redis,
    counts: Mapping[str, int],
    unparsed: Mapping[str, int],
    rejects: Mapping[str, int] | None = None,
    *,
    chunk_items: int = 0,
) -> None:
    """``record_ingest_counts``, but a Redis outage costs only these figures, logged: the
    rows are already committed and the caller's answer must not depend on a counter."""
    try:
        record_ingest_counts(client, counts, unparsed, rejects, chunk_items=chunk_items)
    except redis.RedisError as exc:
        logger.warning("ingest counters not recorded (%s): %s", exc, dict(counts))


@dataclass(frozen=True)
class IngestCounts:
    rows: dict[str, int]  # by outcome, every outcome present
    unparsed: dict[str, int]  # by typed column
    rejects: dict[str, int]  # by reason code, every reason present
    chunks: int = 0  # chunks the ingest workers wrote
    chunk_items: int = 0  # items in them
    chunk_sizes: HistogramFigures | None = None  # items per chunk


def read_ingest_counts(client: redis.Redis) -> IngestCounts:
    """The shared totals; 0 for an outcome or reason not seen yet."""
    pipe = client.pipeline(transaction=False)
    for key in (ROWS_KEY, UNPARSED_KEY, REJECTS_KEY, CHUNKS_KEY, CHUNK_SIZE_KEY):
        pipe.hgetall(key)
    rows_raw, unparsed_raw, rejects_raw, chunks_raw, sizes_raw = pipe.execute()
    chunks = {decode_text(k): int(v) for k, v in chunks_raw.items()}
    rows = dict.fromkeys(OUTCOMES, 0)
    rows.update({decode_text(k): int(v) for k, v in rows_raw.items()})
    rejects = dict.fromkeys((reason.value for reason in RejectReason), 0)
    rejects.update({decode_text(k): int(v) for k, v in rejects_raw.items()})
    unparsed = {decode_text(k): int(v) for k, v in unparsed_raw.items()}
    sizes = read_histograms(sizes_raw, CHUNK_SIZE_BUCKETS).get("")
    return IngestCounts(
        rows, unparsed, rejects, chunks.get("chunks", 0), chunks.get("items", 0), sizes
    )


class IngestMetricsCollector(Collector):
    """Exports the Redis totals as ``gateway_ingest_rows_total{outcome}`` and
    ``gateway_ingest_unparsed_values_total{field}``."""

    def __init__(self, client_factory: Callable[[], redis.Redis]) -> None:
        self._client_factory = client_factory

    def collect(self) -> Iterator[Metric]:
        try:
            counts = read_ingest_counts(self._client_factory())
        except redis.RedisError as exc:
            # A scrape without these series beats a failed scrape of every other metric.
            logger.warning("ingest metrics unavailable: %s", exc)
            return
        yield from ingest_metric_families(counts)

    def describe(self) -> Iterator[Metric]:
        # Names only, so registering the collector does not read Redis.
        yield from ingest_metric_families(IngestCounts({}, {}, {}))


def ingest_metric_families(counts: IngestCounts) -> Iterator[Metric]:
    rows, unparsed = counts.rows, counts.unparsed
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
    rejects_family = CounterMetricFamily(
        "gateway_ingest_rejects",
        "Accepted result items recorded in ingest_rejects instead of parcels, by reason",
        labels=["reason"],
    )
    for reason, value in sorted(counts.rejects.items()):
        rejects_family.add_metric([reason], value)
    yield rejects_family
    yield CounterMetricFamily(
        "gateway_ingest_chunks",
        "Chunks the ingest workers wrote (one COPY and one statement each)",
        value=counts.chunks,
    )
    yield CounterMetricFamily(
        "gateway_ingest_chunk_items",
        "Result items in the chunks written; divided by chunks, the mean chunk size",
        value=counts.chunk_items,
    )
    sizes = counts.chunk_sizes or zero_histogram(CHUNK_SIZE_BUCKETS)
    yield HistogramMetricFamily(
        "gateway_ingest_chunk_size",
        "Result items per chunk the ingest workers wrote",
        buckets=sizes.cumulative,
        sum_value=sizes.total,
    )
