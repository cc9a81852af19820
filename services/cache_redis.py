"""The process's one Redis client of the cache Redis (``GATEWAY_REDIS_URL``): ingest metrics,
and rate limits and quotas unless they have a Redis of their own. Its uses are best effort or
fail closed, so an unreachable Redis costs each call at most the timeout."""

from __future__ import annotations

from functools import lru_cache

import redis

from settings import get_settings

CACHE_REDIS_TIMEOUT_S = 2.0


@lru_cache(maxsize=1)
def cache_redis() -> redis.Redis:
    # redis-py's pool notices a fork (Celery prefork children) and opens its own connections.
    return redis.Redis.from_url(
        get_settings().cache_url,
        socket_connect_timeout=CACHE_REDIS_TIMEOUT_S,
        socket_timeout=CACHE_REDIS_TIMEOUT_S,
    )
