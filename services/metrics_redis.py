"""Fleet-wide counters (ingest, task outcomes) live in the cache Redis.

Figures made in any process (API workers, Celery prefork children) are added to hashes there
and exported by the API's ``/metrics``, so none is lost when a child exits. Metrics are best
effort: the client is the process's cache client, whose timeout bounds what an unreachable
Redis costs an ingest or a request.
"""

from __future__ import annotations

import redis

from services.cache_redis import cache_redis


def metrics_redis() -> redis.Redis:
    return cache_redis()


def decode_text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
