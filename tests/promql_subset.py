"""Enough PromQL to evaluate the dashboard's summary queries on scrapes of ``/metrics``.

No Prometheus runs in the tests, so this reads two scrapes taken a known time apart and
evaluates: selectors with ``=``, ``!=``, ``=~``, ``!~`` matchers; ``rate(selector[window])``
(the increase between the scrapes over the time between them); ``sum``, ``max``, ``min``
with an optional ``by (...)``; numbers; ``*``, ``/``, ``+``, ``-`` between vectors whose
label sets match, or with a number.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

Labels = frozenset[tuple[str, str]]
Vector = dict[Labels, float]
Value = Vector | float
TOKEN = re.compile(
    r"\s*(?:(?P<number>\d+(?:\.\d+)?)|(?P<name>[A-Za-z_:][A-Za-z0-9_:]*)"
    r'|(?P<string>"(?:[^"\\]|\\.)*")|(?P<duration>\[\d+[smhdw]\])|(?P<op>=~|!~|!=|[=(){},*/+-]))'
)
AGGREGATIONS: dict[str, Callable[[list[float]], float]] = {"sum": sum, "max": max, "min": min}
OPERATORS: dict[str, Callable[[float, float], float]] = {
    "*": operator.mul, "/": operator.truediv, "+": operator.add, "-": operator.sub,
}  # fmt: skip


def read_samples(metrics_text: str) -> dict[str, Vector]:
    """Samples by series name, keyed by their label sets."""
    samples: dict[str, Vector] = {}
    for family in text_string_to_metric_families(metrics_text):
        for sample in family.samples:
            key = frozenset(sample.labels.items())
            samples.setdefault(sample.name, {})[key] = sample.value
    return samples


@dataclass
class Scrapes:
    before: dict[str, Vector]
    after: dict[str, Vector]
    seconds_between: float


def evaluate(expr: str, scrapes: Scrapes) -> Value:
    tokens = [(kind, text) for match in TOKEN.finditer(expr) for kind, text in _token(match)]
    parser = _Parser(tokens, scrapes)
    value = parser.expression()
    if parser.position != len(tokens):
        raise ValueError(f"not understood after token {parser.position}: {expr}")
    return value


def _token(match: re.Match[str]) -> list[tuple[str, str]]:
    kind = match.lastgroup
    return [] if kind is None else [(kind, match.group(kind))]


class _Parser:
    def __init__(self, tokens: list[tuple[str, str]], scrapes: Scrapes) -> None:
        self.tokens, self.position, self.scrapes = tokens, 0, scrapes

    def peek(self) -> str | None:
        return self.tokens[self.position][1] if self.position < len(self.tokens) else None

    def take(self, expected: str | None = None) -> str:
        _, text = self.tokens[self.position]
        if expected is not None and text != expected:
            raise ValueError(f"expected {expected!r}, found {text!r}")
        self.position += 1
        return text

    def expression(self) -> Value:
        value = self.product()
        while self.peek() in ("+", "-"):
            value = _combine(OPERATORS[self.take()], value, self.product())
        return value

    def product(self) -> Value:
        value = self.term()
        while self.peek() in ("*", "/"):
            value = _combine(OPERATORS[self.take()], value, self.term())
        return value

    def term(self) -> Value:
        kind, text = self.tokens[self.position]
        if kind == "number":
            self.position += 1
            return float(text)
        if text == "(":
            self.take("(")
            value = self.expression()
            self.take(")")
            return value
        if text in AGGREGATIONS:
            return self.aggregation()
        if text == "rate":
            self.take("rate")
            self.take("(")
            name, matchers = self.selector()
            self.position += 1  # the window: the scrapes' own interval is used
            self.take(")")
            return self.rate(name, matchers)
        name, matchers = self.selector()
        return _select(self.scrapes.after.get(name, {}), matchers)

    def aggregation(self) -> Vector:
        how = AGGREGATIONS[self.take()]
        by: list[str] = []
        if self.peek() == "by":
            self.take("by")
            self.take("(")
            while self.peek() != ")":
                by.append(self.take())
                if self.peek() == ",":
                    self.take(",")
            self.take(")")
        self.take("(")
        inner = self.expression()
        self.take(")")
        if not isinstance(inner, dict):
            raise ValueError("an aggregation needs a vector")
        groups: dict[Labels, list[float]] = {}
        for labels, value in inner.items():
            key = frozenset((k, v) for k, v in labels if k in by)
            groups.setdefault(key, []).append(value)
        return {key: how(values) for key, values in groups.items()}

    def selector(self) -> tuple[str, list[tuple[str, str, str]]]:
        name = self.take()
        matchers: list[tuple[str, str, str]] = []
        if self.peek() == "{":
            self.take("{")
            while self.peek() != "}":
                label, op, raw = self.take(), self.take(), self.take()
                matchers.append((label, op, raw[1:-1]))
                if self.peek() == ",":
                    self.take(",")
            self.take("}")
        return name, matchers

    def rate(self, name: str, matchers: list[tuple[str, str, str]]) -> Vector:
        before = _select(self.scrapes.before.get(name, {}), matchers)
        after = _select(self.scrapes.after.get(name, {}), matchers)
        return {
            labels: (value - before.get(labels, 0.0)) / self.scrapes.seconds_between
            for labels, value in after.items()
        }


def _select(series: Vector, matchers: list[tuple[str, str, str]]) -> Vector:
    def matches(labels: Labels) -> bool:
        values = dict(labels)
        for label, op, wanted in matchers:
            value = values.get(label, "")
            is_match = (
                value == wanted if op in ("=", "!=") else re.fullmatch(wanted, value) is not None
            )
            if is_match != (op in ("=", "=~")):
                return False
        return True

    return {labels: value for labels, value in series.items() if matches(labels)}


def _combine(how: Callable[[float, float], float], left: Value, right: Value) -> Value:
    if isinstance(left, dict) and isinstance(right, dict):
        return {
            k: how(v, right[k])
            for k, v in left.items()
            if k in right and not _nan(how, v, right[k])
        }
    if isinstance(left, dict) and not isinstance(right, dict):
        return {k: how(v, right) for k, v in left.items()}
    if isinstance(right, dict) and not isinstance(left, dict):
        return {k: how(left, v) for k, v in right.items()}
    assert not isinstance(left, dict) and not isinstance(right, dict)
    return how(left, right)


def _nan(how: Callable[[float, float], float], left: float, right: float) -> bool:
    return how is operator.truediv and right == 0
