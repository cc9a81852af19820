"""A value computed at most once per interval, however many callers ask at once.

``/metrics`` and ``/health/ready`` need no auth and no rate limit: without this, each call
would run the ledger's group-by queries or open new connections to every server.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class TimedCache(Generic[T]):
    def __init__(self, compute: Callable[[], T], *, max_age_s: Callable[[], float]) -> None:
        self._compute, self._max_age_s = compute, max_age_s
        self._value: T | None = None
        self._computed_at: float | None = None
        self._lock = threading.Lock()

    def _fresh(self) -> T | None:
        if self._computed_at is None or time.monotonic() - self._computed_at > self._max_age_s():
            return None
        return self._value

    def peek(self) -> T | None:
        """The cached value if it is fresh, without computing (for callers that must not
        block, such as the event loop)."""
        with self._lock:
            return self._fresh()

    def get(self) -> T:
        """The cached value, or a new one; concurrent callers wait for one computation."""
        with self._lock:
            value = self._fresh()
            if value is None:
                value = self._compute()
                self._value, self._computed_at = value, time.monotonic()
            return value

    def clear(self) -> None:
        with self._lock:
            self._value, self._computed_at = None, None
