"""Histograms kept in Redis hashes, so observations from any process add to one histogram.

A hash holds, per label set, one count per bucket (not cumulative), the sum and the count;
fields are ``{label}|{le}``, ``{label}|sum`` and ``{label}|count``. Export makes the buckets
cumulative, as Prometheus expects.
"""

from __future__ import annotations

import bisect
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from redis.client import Pipeline

from services.metrics_redis import decode_text

LABEL_SEPARATOR = "|"


def bucket_label(bound: float) -> str:
    return "+Inf" if math.isinf(bound) else repr(float(bound))


@dataclass
class HashIncrements:
    """Increments of Redis hash fields, summed before they are sent: a group of N finished
    attempts costs one HINCRBY per distinct field, not several per attempt."""

    whole: Counter[tuple[str, str]] = field(default_factory=Counter)
    fractional: dict[tuple[str, str], float] = field(default_factory=dict)

    def add(self, key: str, name: str, amount: int = 1) -> None:
        self.whole[key, name] += amount

    def add_float(self, key: str, name: str, amount: float) -> None:
        self.fractional[key, name] = self.fractional.get((key, name), 0.0) + amount

    def queue_on(self, pipe: Pipeline) -> None:
        for (key, name), amount in self.whole.items():
            if amount:
                pipe.hincrby(key, name, amount)
        for (key, name), total in self.fractional.items():
            pipe.hincrbyfloat(key, name, total)


def add_observation(
    increments: HashIncrements, key: str, label: str, value: float, buckets: Sequence[float]
) -> None:
    """Add one observation; ``buckets`` are sorted finite upper bounds."""
    value = max(value, 0.0)
    index = bisect.bisect_left(buckets, value)
    bound = buckets[index] if index < len(buckets) else math.inf
    increments.add(key, f"{label}{LABEL_SEPARATOR}{bucket_label(bound)}")
    increments.add_float(key, f"{label}{LABEL_SEPARATOR}sum", value)
    increments.add(key, f"{label}{LABEL_SEPARATOR}count")


@dataclass
class HistogramFigures:
    cumulative: list[tuple[str, float]] = field(default_factory=list)  # (le, count up to it)
    total: float = 0.0
    count: float = 0.0


def read_histograms(
    raw: Mapping[bytes | str, bytes | str], buckets: Sequence[float]
) -> dict[str, HistogramFigures]:
    """The hash's histograms by label, every bucket present."""
    per_label: dict[str, dict[str, float]] = {}
    for raw_field, raw_value in raw.items():
        label, _, part = decode_text(raw_field).rpartition(LABEL_SEPARATOR)
        per_label.setdefault(label, {})[part] = float(decode_text(raw_value))
    return {label: _cumulate(parts, buckets) for label, parts in per_label.items()}


def zero_histogram(buckets: Sequence[float]) -> HistogramFigures:
    """Every bucket at 0: a series present before its first observation, so that a rate
    counts that observation."""
    return _cumulate({}, buckets)


def _cumulate(parts: Mapping[str, float], buckets: Iterable[float]) -> HistogramFigures:
    figures = HistogramFigures(total=parts.get("sum", 0.0), count=parts.get("count", 0.0))
    running = 0.0
    for bound in [*buckets, math.inf]:
        running += parts.get(bucket_label(bound), 0.0)
        figures.cumulative.append((bucket_label(bound), running))
    return figures
