"""``gatewayctl platforms``: list, add, enable, disable and set a platform's retry policy."""

from __future__ import annotations

from typing import Any

import click

from cli.admin_api import admin_api
from cli.output import echo_json, json_option
from db.models import Platform
from db.session import session_scope
from services.dispatch import platforms as platform_service

_DEFAULT = "default"


def _platform_json(platform: Platform) -> dict[str, Any]:
    from gateway_api.routes.admin_platforms import PlatformOut

    return PlatformOut.from_platform(platform).model_dump(mode="json")


def _describe(platform: dict[str, Any]) -> str:
    policy = platform["retry_policy"]
    retries, backoff = platform["max_retries"], platform["retry_backoff_base_s"]
    retry_text = f"{policy['max_retries']} (default)" if retries is None else str(retries)
    backoff_text = (
        f"{policy['retry_backoff_base_s']}s (default)" if backoff is None else f"{backoff}s"
    )
    state = "enabled" if platform["is_enabled"] else "disabled"
    return (
        f"{platform['name']:<16} {state:<9} retries={retry_text:<14} backoff={backoff_text:<14} "
        f"{platform['description']}"
    )


def _policy_value(value: str | None, option: str, high: int) -> int | None:
    """``default`` → None (the gateway setting); otherwise a whole number within bounds."""
    if value is None or value == _DEFAULT:
        return None
    try:
        number = int(value)
    except ValueError:
        raise click.BadParameter(f"a number or {_DEFAULT!r}", param_hint=option) from None
    if not 0 <= number <= high:
        raise click.BadParameter(f"must be 0..{high} or {_DEFAULT!r}", param_hint=option)
    return number


def _update(name: str, changes: dict[str, Any]) -> dict[str, Any]:
    """Apply ``changes`` (the admin API's PATCH body) to NAME; returns the platform."""
    api = admin_api()
    if api is not None:
        platform: dict[str, Any] = api.patch(f"/admin/platforms/{name}", changes)
        return platform
    with session_scope() as session:
        row = platform_service.update_platform(
            session, name, platform_service.PlatformChanges(**changes)
        )
        return _platform_json(row)


@click.group("platforms")
def platforms_group() -> None:
    """Scraping platforms: rows, not code (a new county platform needs no deploy)."""


@platforms_group.command("list")
@json_option
def list_command(as_json: bool) -> None:
    """Every platform with its state and retry policy."""
    api = admin_api()
    if api is not None:
        platforms: list[dict[str, Any]] = api.get("/admin/platforms")["platforms"]
    else:
        with session_scope() as session:
            platforms = [_platform_json(p) for p in platform_service.list_platforms(session)]
    if as_json:
        echo_json({"platforms": platforms})
        return
    for platform in platforms:
        click.echo(_describe(platform))


@platforms_group.command("add")
@click.argument("name")
@click.option("--description", default="", help="What the platform is (free text).")
@click.option("--disabled", is_flag=True, help="Add it disabled (no leasing, no enqueue).")
@click.option("--max-retries", help=f"Retries before dead-lettering, or {_DEFAULT!r}.")
@click.option("--backoff-base", help=f"Seconds: retry n waits base·2^(n-1); or {_DEFAULT!r}.")
def add_command(
    name: str,
    description: str,
    disabled: bool,
    max_retries: str | None,
    backoff_base: str | None,
) -> None:
    """Add platform NAME (lower-case letters, digits, underscores)."""
    fields: dict[str, Any] = {
        "description": description,
        "is_enabled": not disabled,
        "max_retries": _policy_value(
            max_retries, "--max-retries", platform_service.MAX_RETRIES_LIMIT
        ),
        "retry_backoff_base_s": _policy_value(
            backoff_base, "--backoff-base", platform_service.MAX_BACKOFF_BASE_S
        ),
    }
    api = admin_api()
    if api is not None:
        platform = api.post("/admin/platforms", {"name": name, **fields})
    else:
        with session_scope() as session:
            platform = _platform_json(platform_service.add_platform(session, name, **fields))
    click.echo(f"added {_describe(platform)}")


@platforms_group.command("enable")
@click.argument("name")
def enable_command(name: str) -> None:
    """Enable NAME: leasing and enqueue take it again."""
    click.echo(_describe(_update(name, {"is_enabled": True})))


@platforms_group.command("disable")
@click.argument("name")
def disable_command(name: str) -> None:
    """Disable NAME: its queued tasks wait, leasing skips it, enqueue refuses it."""
    click.echo(_describe(_update(name, {"is_enabled": False})))


@platforms_group.command("set-retry")
@click.argument("name")
@click.option("--max-retries", help=f"Retries before dead-lettering, or {_DEFAULT!r}.")
@click.option("--backoff-base", help=f"Seconds: retry n waits base·2^(n-1); or {_DEFAULT!r}.")
def set_retry_command(name: str, max_retries: str | None, backoff_base: str | None) -> None:
    """Set NAME's retry policy (max retries apply to tasks enqueued from now on)."""
    if max_retries is None and backoff_base is None:
        raise click.UsageError("give --max-retries and/or --backoff-base")
    changes: dict[str, Any] = {}
    if max_retries is not None:
        changes["max_retries"] = _policy_value(
            max_retries, "--max-retries", platform_service.MAX_RETRIES_LIMIT
        )
    if backoff_base is not None:
        changes["retry_backoff_base_s"] = _policy_value(
            backoff_base, "--backoff-base", platform_service.MAX_BACKOFF_BASE_S
        )
    click.echo(_describe(_update(name, changes)))
