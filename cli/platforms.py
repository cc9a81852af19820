"""``gatewayctl platforms``: list, add, enable, disable and set a platform's retry policy."""

from __future__ import annotations

import click

from db.models import Platform
from db.session import session_scope
from services.dispatch import platforms as platform_service
from settings import get_settings

_DEFAULT = "default"


def _describe(platform: Platform) -> str:
    settings = get_settings()
    retries = platform.max_retries
    backoff = platform.retry_backoff_base_s
    retry_text = f"{settings.max_retries} (default)" if retries is None else str(retries)
    backoff_text = (
        f"{settings.retry_backoff_base_s}s (default)" if backoff is None else f"{backoff}s"
    )
    state = "enabled" if platform.is_enabled else "disabled"
    return (
        f"{platform.name:<16} {state:<9} retries={retry_text:<14} backoff={backoff_text:<14} "
        f"{platform.description}"
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


@click.group("platforms")
def platforms_group() -> None:
    """Scraping platforms: rows, not code (a new county platform needs no deploy)."""


@platforms_group.command("list")
def list_command() -> None:
    """Every platform with its state and retry policy."""
    with session_scope() as session:
        for platform in platform_service.list_platforms(session):
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
    retries = _policy_value(max_retries, "--max-retries", platform_service.MAX_RETRIES_LIMIT)
    base = _policy_value(backoff_base, "--backoff-base", platform_service.MAX_BACKOFF_BASE_S)
    with session_scope() as session:
        platform = platform_service.add_platform(
            session,
            name,
            description=description,
            is_enabled=not disabled,
            max_retries=retries,
            retry_backoff_base_s=base,
        )
        line = _describe(platform)
    click.echo(f"added {line}")


def _set_enabled(name: str, *, is_enabled: bool) -> None:
    changes = platform_service.PlatformChanges(is_enabled=is_enabled)
    with session_scope() as session:
        line = _describe(platform_service.update_platform(session, name, changes))
    click.echo(line)


@platforms_group.command("enable")
@click.argument("name")
def enable_command(name: str) -> None:
    """Enable NAME: leasing and enqueue take it again."""
    _set_enabled(name, is_enabled=True)


@platforms_group.command("disable")
@click.argument("name")
def disable_command(name: str) -> None:
    """Disable NAME: its queued tasks wait, leasing skips it, enqueue refuses it."""
    _set_enabled(name, is_enabled=False)


@platforms_group.command("set-retry")
@click.argument("name")
@click.option("--max-retries", help=f"Retries before dead-lettering, or {_DEFAULT!r}.")
@click.option("--backoff-base", help=f"Seconds: retry n waits base·2^(n-1); or {_DEFAULT!r}.")
def set_retry_command(name: str, max_retries: str | None, backoff_base: str | None) -> None:
    """Set NAME's retry policy (max retries apply to tasks enqueued from now on)."""
    if max_retries is None and backoff_base is None:
        raise click.UsageError("give --max-retries and/or --backoff-base")
    unset = platform_service.UNSET
    changes = platform_service.PlatformChanges(
        max_retries=unset
        if max_retries is None
        else _policy_value(max_retries, "--max-retries", platform_service.MAX_RETRIES_LIMIT),
        retry_backoff_base_s=unset
        if backoff_base is None
        else _policy_value(backoff_base, "--backoff-base", platform_service.MAX_BACKOFF_BASE_S),
    )
    with session_scope() as session:
        line = _describe(platform_service.update_platform(session, name, changes))
    click.echo(line)
