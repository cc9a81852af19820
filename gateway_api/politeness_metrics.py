"""``gateway_rate_limit_per_minute``: the start rate each configured limit is held to now.

Read at scrape time from the limits table and the start budget in Redis, so every process
reports the same figure and a pushback shows at once; only configured scopes are labelled,
which keeps the series few.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy.exc import SQLAlchemyError

from db.session import session_scope
from gateway_api.metrics import register_live_collector
from gateway_api.timed_cache import TimedCache
from services.dispatch.politeness import LimitInForce, read_limits_in_force
from services.errors import ServiceUnavailable
from settings import get_settings

logger = logging.getLogger(__name__)


def _read_limits() -> list[LimitInForce]:
    with session_scope() as session:
        return read_limits_in_force(session)


limits_in_force = TimedCache(_read_limits, max_age_s=lambda: get_settings().metrics_cache_s)


def rate_limit_families(limits: list[LimitInForce]) -> Iterator[GaugeMetricFamily]:
    effective = GaugeMetricFamily(
        "gateway_rate_limit_per_minute",
        "Task starts a minute allowed now by a configured limit (lowered after pushback);"
        " county '' is the whole platform",
        labels=["platform", "county"],
    )
    configured = GaugeMetricFamily(
        "gateway_rate_limit_configured_per_minute",
        "Task starts a minute as configured",
        labels=["platform", "county"],
    )
    for limit in limits:
        scope = limit.rate.limit.scope
        effective.add_metric([scope.platform, scope.county], limit.rate.per_minute)
        configured.add_metric([scope.platform, scope.county], limit.rate.limit.per_minute)
    yield from (effective, configured)


class RateLimitCollector(Collector):
    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            limits = limits_in_force.get()
        except (SQLAlchemyError, ServiceUnavailable) as exc:
            logger.warning("rate limit metrics unavailable: %s", exc)
            return
        yield from rate_limit_families(limits)

    def describe(self) -> Iterator[GaugeMetricFamily]:
        yield from rate_limit_families([])  # names only: no database read at registration


_collector: RateLimitCollector | None = None


def install_rate_limit_metrics() -> RateLimitCollector:
    global _collector
    if _collector is None:
        _collector = RateLimitCollector()
        register_live_collector(_collector)
    return _collector
