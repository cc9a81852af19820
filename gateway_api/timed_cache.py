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
        # (value, when computed), replaced in one assignment: readers need no lock.
        self._entry: tuple[T, float] | None = None
        self._lock = threading.Lock()

    def _fresh(self) -> T | None:
        entry = self._entry
        if entry is None or time.monotonic() - entry[1] > self._max_age_s():
            return None
        return entry[0]

    def peek(self) -> T | None:
        """The cached value if it is fresh, without computing or waiting for a computation
        in progress (for the event loop)."""
        return self._fresh()

    def get(self) -> T:
        """The cached value, or a new one; concurrent callers wait for one computation."""
        with self._lock:
            value = self._fresh()
            if value is None:
                value = self._compute()
                self._entry = (value, time.monotonic())
            return value

    def refresh(self) -> T:
        """A new value, whatever the age of the cached one."""
        with self._lock:
            value = self._compute()
            self._entry = (value, time.monotonic())
            return value

    def clear(self) -> None:
        self._entry = None
