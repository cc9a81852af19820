"""This process's own load for the heartbeat: CPU since the last reading, and resident memory."""

from __future__ import annotations

import os
import threading
import time
from collections import deque


class CpuMeter:
    """Per cent of one core used by this process since the previous reading (summed over cores,
    as ``top`` shows it)."""

    def __init__(self) -> None:
        self._last = (time.monotonic(), time.process_time())

    def read_percent(self) -> float:
        now = (time.monotonic(), time.process_time())
        wall_s, cpu_s = now[0] - self._last[0], now[1] - self._last[1]
        self._last = now
        return round(100.0 * cpu_s / wall_s, 1) if wall_s > 0 else 0.0


def read_memory_percent() -> float | None:
    """Resident memory as a per cent of physical memory; None where /proc is not there."""
    try:
        with open("/proc/self/statm") as statm:
            resident_pages = int(statm.read().split()[1])
        total_pages = os.sysconf("SC_PHYS_PAGES")
    except (OSError, ValueError, IndexError):
        return None
    return round(100.0 * resident_pages / total_pages, 2) if total_pages > 0 else None


class RecentEvents:
    """How many events happened in the last ``window_s`` seconds (thread-safe)."""

    def __init__(self, window_s: float = 60.0) -> None:
        self.window_s = window_s
        self._times: deque[float] = deque()
        self._lock = threading.Lock()

    def record(self, count: int = 1) -> None:
        now = time.monotonic()
        with self._lock:
            self._times.extend([now] * count)

    def count(self) -> int:
        cutoff = time.monotonic() - self.window_s
        with self._lock:
            while self._times and self._times[0] < cutoff:
                self._times.popleft()
            return len(self._times)
