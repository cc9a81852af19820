"""The wake-up channel: "scrape messages were just published for these platforms".

Every path that publishes scrape messages (enqueue, the re-publish of unpublished, vanished
and due-retry rows, which also carries dead-letter re-drives and expired leases) announces
it here *after* the broker accepted the messages; each API process has one listener that
wakes its waiting long polls (``services.dispatch.work_waiters``).

Why Redis pub/sub on the cache Redis (``GATEWAY_REDIS_URL``) rather than PostgreSQL
LISTEN/NOTIFY:

- It does not depend on the broker kind: the cache Redis exists with a Redis and with a
  RabbitMQ broker alike, so both behave the same.
- A NOTIFY is delivered at the commit of the ledger transaction, which comes *before* the
  broker publish: a woken poll would look into a queue that does not hold the message yet.
  The Redis announcement is sent after the publish returned.
- LISTEN needs one PostgreSQL connection per API process held outside the pool, forever;
  the API's pools are small and sized for requests. A Redis subscription costs little, and
  the async client (``redis.asyncio``) waits on the event loop without a thread.

Pub/sub is fire-and-forget: an announcement sent while a listener is reconnecting is lost.
That is acceptable by design: the listener's safety poll (``GATEWAY_WORK_SAFETY_POLL_S``)
and the poll made on every reconnect find such work, only later. A failed announcement is
logged and never fails the publish.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterable, Mapping
from functools import lru_cache

import redis

from settings import get_settings

logger = logging.getLogger(__name__)
WAKEUP_CHANNEL = "dispatch:work-published"
LISTENER_CLIENT_NAME = "gateway-work-wakeups"
_TIMEOUT_S = 1.0


def encode_wakeup(counts: Mapping[str, int]) -> str:
    """The message: messages published per platform, ``{"demo": 3}``."""
    return json.dumps(dict(counts), separators=(",", ":"))


def decode_wakeup(raw: bytes | str) -> dict[str, int]:
    """A malformed message wakes nobody (it is logged); the safety poll still runs."""
    try:
        value = json.loads(raw)
        counts = {str(name): int(n) for name, n in value.items()}
    except (ValueError, TypeError, AttributeError) as exc:
        logger.warning("ignored a malformed wake-up message %r: %s", raw[:200], exc)
        return {}
    return {name: n for name, n in counts.items() if n > 0}


def count_by_platform(platforms: Iterable[str]) -> dict[str, int]:
    return dict(Counter(platforms))


@lru_cache(maxsize=1)
def _wakeup_redis() -> redis.Redis:
    # redis-py's pool notices a fork (Celery prefork children) and opens its own connections.
    return redis.Redis.from_url(
        get_settings().cache_url, socket_timeout=_TIMEOUT_S, socket_connect_timeout=_TIMEOUT_S
    )


def announce_published(counts: Mapping[str, int], *, client: redis.Redis | None = None) -> bool:
    """Announce published messages; returns whether the announcement went out."""
    if not counts:
        return False
    try:
        (client or _wakeup_redis()).publish(WAKEUP_CHANNEL, encode_wakeup(counts))
    except redis.RedisError as exc:
        logger.warning("wake-up announcement failed (safety poll will find the work): %s", exc)
        return False
    return True
