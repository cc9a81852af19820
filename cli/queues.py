"""``gatewayctl queues``: the comma list a worker passes to ``celery worker -Q``, and
``queues depth``: queued tasks per platform and priority with the oldest one's age."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import click

from cli.admin_api import admin_api
from cli.output import echo_json, format_duration, json_option
from db.session import session_scope
from scrapers import registered_platforms
from services.dispatch.ledger_stats import read_queue_depths
from services.queue_topology import SERVICE_QUEUES, scrape_worker_queue_names
from services.queues import scrape_queue_names


@click.group("queues", invoke_without_command=True)
@click.option("--platform", "platforms", multiple=True, help="Only these platforms.")
@click.option("--service", "is_service", is_flag=True, help="The service worker's queues instead.")
@click.pass_context
def show_queues(ctx: click.Context, platforms: tuple[str, ...], is_service: bool) -> None:
    """Print the scrape queues a scrape worker should consume, highest priority first."""
    if ctx.invoked_subcommand is not None:
        return
    if is_service:
        click.echo(",".join(SERVICE_QUEUES))
        return
    api = admin_api()
    if api is not None:
        enabled = [p["name"] for p in api.get("/admin/platforms")["platforms"] if p["is_enabled"]]
        registered = set(registered_platforms())
        chosen = list(platforms) or [name for name in enabled if name in registered]
        names = scrape_queue_names(chosen)
    else:
        with session_scope() as session:
            names = scrape_worker_queue_names(session, platforms=list(platforms) or None)
    if not names:
        raise click.ClickException("no enabled platform has a scraper in this codebase")
    click.echo(",".join(names))


@show_queues.command("depth")
@click.option("--platform", help="Only this platform.")
@json_option
def depth_command(platform: str | None, as_json: bool) -> None:
    """Queued tasks per platform and priority, with how long the oldest has waited."""
    api = admin_api()
    if api is not None:
        body: dict[str, Any] = api.get("/admin/queues", {"platform": platform})
    else:
        from gateway_api.routes.admin_queues import build_queue_depth_list

        with session_scope() as session:
            depths = read_queue_depths(session, platform=platform)
        listing = build_queue_depth_list(depths, now=datetime.now(UTC))
        body = listing.model_dump(mode="json")
    if as_json:
        echo_json(body)
        return
    if not body["queues"]:
        click.echo("no queued tasks")
        return
    click.echo(f"{'platform':<16} {'priority':>8} {'queued':>8}  oldest")
    for queue in body["queues"]:
        click.echo(
            f"{queue['platform']:<16} {'p' + str(queue['priority']):>8} {queue['queued']:>8}  "
            f"{format_duration(queue['oldest_age_s'])}"
        )
