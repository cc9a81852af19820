"""``gatewayctl rate-limits``: fleet-wide start limits per platform or county, and the rate in
force now (lower while a site pushes back)."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

import click

from cli.admin_api import admin_api
from cli.output import echo_json, json_option
from db.session import session_scope
from services.dispatch import rate_limits as rate_limit_service
from services.dispatch.politeness import read_limits_in_force
from services.dispatch.rate_limits import Scope, parse_scope

_RATE = re.compile(r"^\s*(\d+)\s*(?:/\s*(?:m|min|minute))?\s*$", re.IGNORECASE)


def parse_rate(text: str) -> int:
    """``5/min`` (or ``5/m``, ``5``): starts a minute."""
    match = _RATE.match(text)
    if match is None or int(match.group(1)) < 1:
        raise click.BadParameter("starts a minute, e.g. 5/min", param_hint="RATE")
    return int(match.group(1))


def _path(scope: Scope) -> str:
    parts = [scope.platform, *([scope.county] if scope.county else [])]
    return "/admin/rate-limits/" + "/".join(quote(part, safe="") for part in parts)


def _limits_json() -> list[dict[str, Any]]:
    from gateway_api.routes.admin_rate_limits import RateLimitOut

    api = admin_api()
    if api is not None:
        limits: list[dict[str, Any]] = api.get("/admin/rate-limits")["rate_limits"]
        return limits
    with session_scope() as session:
        return [
            RateLimitOut.from_limit(limit).model_dump(mode="json")
            for limit in read_limits_in_force(session)
        ]


def _describe(limit: dict[str, Any]) -> str:
    effective = limit["effective_per_minute"]
    note = "" if limit["cut_level"] == 0 else f"  now {effective:g}/min (site pushed back)"
    return f"{limit['scope']:<32} {limit['per_minute']}/min{note}"


@click.group("rate-limits")
def rate_limits_group() -> None:
    """Fleet-wide task start limits per platform (qpublic) or county (qpublic/dixie)."""


@rate_limits_group.command("list")
@json_option
def list_command(as_json: bool) -> None:
    """Every limit with the rate in force now."""
    limits = _limits_json()
    if as_json:
        echo_json({"rate_limits": limits})
        return
    for limit in limits:
        click.echo(_describe(limit))


@rate_limits_group.command("set")
@click.argument("scope")
@click.argument("rate")
@json_option
def set_command(scope: str, rate: str, as_json: bool) -> None:
    """Limit SCOPE (platform or platform/county) to RATE starts a minute, e.g. 5/min."""
    per_minute = parse_rate(rate)
    api = admin_api()
    if api is not None:
        # The API parses the scope itself; only the split into path parts happens here.
        platform, _, county = scope.partition("/")
        limit: dict[str, Any] = api.put(_path(Scope(platform, county)), {"per_minute": per_minute})
    else:
        parsed = parse_scope(scope)
        with session_scope() as session:
            rate_limit_service.set_rate_limit(session, parsed, per_minute=per_minute)
        limit = next(item for item in _limits_json() if item["scope"] == parsed.label)
    if as_json:
        echo_json(limit)
        return
    click.echo(_describe(limit))


@rate_limits_group.command("clear")
@click.argument("scope")
@json_option
def clear_command(scope: str, as_json: bool) -> None:
    """Remove SCOPE's limit (a county then follows its platform's limit alone)."""
    api = admin_api()
    if api is not None:
        platform, _, county = scope.partition("/")
        cleared: dict[str, Any] = api.delete(_path(Scope(platform, county)))
    else:
        parsed = parse_scope(scope)
        with session_scope() as session:
            rate_limit_service.clear_rate_limit(session, parsed)
        cleared = {"scope": parsed.label, "cleared": True}
    if as_json:
        echo_json(cleared)
        return
    click.echo(f"cleared {cleared['scope']}")
