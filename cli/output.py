"""What every command shares: ``--json``, human durations in and out."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PART = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")


def json_option(function: F) -> F:
    option = click.option("--json", "as_json", is_flag=True, help="Print JSON, not lines.")
    return option(function)


def echo_json(data: object) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))


def parse_duration_s(text: str) -> float:
    """``90`` (seconds), ``45s``, ``10m``, ``2h``, ``1d``, ``1w``, or a sum such as ``1h30m``."""
    value = text.strip().lower()
    try:
        return float(value)
    except ValueError:
        pass
    if not value or _PART.sub("", value):
        raise ValueError(f"{text!r} is not a duration like 90s, 10m, 2h, 1d or 1h30m")
    return float(sum(float(n) * _UNIT_S[unit] for n, unit in _PART.findall(value)))


class Duration(click.ParamType[float, Any]):
    """A duration option read as seconds."""

    name = "duration"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        if isinstance(value, int | float):
            return float(value)
        try:
            return parse_duration_s(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


DURATION = Duration()


def format_duration(seconds: float | None) -> str:
    """``45s``, ``12m 5s``, ``3h 20m``, ``2d 4h``: the two largest units."""
    if seconds is None:
        return "-"
    whole = int(max(seconds, 0))
    parts: list[str] = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if whole >= size or (unit == "s" and not parts):
            parts.append(f"{whole // size}{unit}")
            whole %= size
    return " ".join(parts[:2])
