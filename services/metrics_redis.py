"""The one Redis client for fleet-wide counters (ingest, task outcomes).

Figures made in any process (API workers, Celery prefork children) are added to hashes in the
cache Redis and exported by the API's ``/metrics``, so none is lost when a child exits.
"""

from __future__ import annotations

from functools import lru_cache

import redis

from settings import get_settings

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


def decode_text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
