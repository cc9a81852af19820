"""When a failed call is tried again, and how long to wait first.

Transient trouble (connection refused or cut, 5xx, 429) is retried with capped exponential
backoff and full jitter, so a fleet that lost the gateway at the same moment does not come
back at the same moment. A ``Retry-After`` from the gateway is the least wait.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 6  # the first try included
    base_delay_s: float = 0.25
    max_delay_s: float = 10.0
    # A Retry-After beyond this is not waited out in a call: the error goes to the caller.
    max_retry_after_s: float = 60.0

    def delay_s(self, attempt: int, retry_after_s: float | None = None) -> float:
        """The wait before try ``attempt + 1`` (``attempt`` counts from 1)."""
        ceiling = min(self.max_delay_s, self.base_delay_s * 2 ** (attempt - 1))
        jittered = random.uniform(0, ceiling)
        if retry_after_s is None:
            return jittered
        return min(retry_after_s, self.max_retry_after_s) + jittered * 0.1

    def allows_retry(self, attempt: int, retry_after_s: float | None = None) -> bool:
        if attempt >= self.max_attempts:
            return False
        return retry_after_s is None or retry_after_s <= self.max_retry_after_s


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header: delta-seconds or an HTTP date."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())
