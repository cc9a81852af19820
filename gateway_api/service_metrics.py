"""Service figures for ``/metrics``: readiness by check, and messages waiting in the broker's
service queues (``ingest``: results accepted but not yet written — the ingest lag).

Read at scrape time, through the same caches as ``/health/ready`` and the ledger figures, so
frequent scrapes cost no more probes. Global: aggregate with ``max`` (or ``min`` for
readiness) across API processes.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from kombu.exceptions import KombuError
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from redis import RedisError

from gateway_api.metrics import register_live_collector
from gateway_api.routes.health import readiness
from gateway_api.timed_cache import TimedCache
from services.errors import ServiceError
from services.queues import INGEST_QUEUE, MAINTENANCE_QUEUE
from settings import get_settings

logger = logging.getLogger(__name__)
SERVICE_QUEUES = (INGEST_QUEUE, MAINTENANCE_QUEUE)


def read_service_queue_messages() -> dict[str, int]:
    from services.dispatch.broker_client import pooled_connection, queue_for

    counts: dict[str, int] = {}
    with pooled_connection() as connection:
        channel = connection.channel()
        try:
            for name in SERVICE_QUEUES:
                _, count, _ = queue_for(name).bind(channel).queue_declare()
                counts[name] = int(count)
        finally:
            channel.close()
    return counts


service_queue_messages = TimedCache(
    read_service_queue_messages, max_age_s=lambda: get_settings().metrics_cache_s
)


class ServiceCollector(Collector):
    def collect(self) -> Iterator[GaugeMetricFamily]:
        ready = GaugeMetricFamily(
            "gateway_readiness_check",
            "1 when the API reaches this server (database, redis, broker), 0 when not",
            labels=["check"],
        )
        for result in readiness.get():
            ready.add_metric([result.name], 1 if result.is_ok else 0)
        yield ready
        try:
            counts = service_queue_messages.get()
        except (KombuError, OSError, RedisError, ServiceError) as exc:
            logger.warning("broker queue figures unavailable: %s", exc)
            return
        queued = GaugeMetricFamily(
            "gateway_broker_queue_messages",
            "Messages waiting in a service queue of the broker (ingest: results accepted, not "
            "yet written); global: aggregate with max",
            labels=["queue"],
        )
        for name, count in sorted(counts.items()):
            queued.add_metric([name], count)
        yield queued

    def describe(self) -> Iterator[GaugeMetricFamily]:
        # Names only, so registering the collector probes nothing.
        yield GaugeMetricFamily("gateway_readiness_check", "", labels=["check"])
        yield GaugeMetricFamily("gateway_broker_queue_messages", "", labels=["queue"])


_collector: ServiceCollector | None = None


def install_service_metrics() -> ServiceCollector:
    """Register the collector once per process (create_app may run more than once)."""
    global _collector
    if _collector is None:
        _collector = ServiceCollector()
        register_live_collector(_collector)
    return _collector
