"""The ``gatewayctl`` entry point. Each command group lives in its own module."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

import click

from services.errors import ServiceError
from settings import ConfigurationError


class GatewayGroup(click.Group):
    """Configuration and service errors (not found, invalid input ...) print one clear line."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except ConfigurationError as exc:
            raise click.ClickException(f"configuration error: {exc}") from exc
        except ServiceError as exc:
            raise click.ClickException(exc.message) from exc


PACKAGE = "taxlien-gateway"


def gateway_version() -> str:
    """The installed package's version; a source checkout that was never installed says so."""
    try:
        return version(PACKAGE)
    except PackageNotFoundError:
        return "0+unknown (not installed)"


@click.group(cls=GatewayGroup)
@click.version_option(gateway_version(), prog_name="gatewayctl", message="%(prog)s %(version)s")
def main() -> None:
    """Operate the Taxlien Gateway: enqueue work, tasks, queues, dead letters, platforms,
    workers, keys.

    With GATEWAY_API_URL and GATEWAY_ADMIN_TOKEN set, commands go through the admin API
    instead of the database.
    """


def register_commands() -> None:
    """Command groups register here (one import each) so ``main`` stays a plain group."""
    from cli.queues import show_queues

    main.add_command(show_queues)
    from cli.api_keys import api_keys_group

    main.add_command(api_keys_group)
    from cli.dead_letters import dead_letters_group
    from cli.enqueue import enqueue_command
    from cli.ingest_rejects import ingest_rejects_group
    from cli.legacy_import import import_legacy_command
    from cli.platforms import platforms_group
    from cli.rate_limits import rate_limits_group
    from cli.tasks import tasks_group
    from cli.worker_tokens import worker_tokens_group
    from cli.workers import workers_group

    main.add_command(enqueue_command)
    main.add_command(dead_letters_group)
    main.add_command(workers_group)
    main.add_command(ingest_rejects_group)
    main.add_command(platforms_group)
    main.add_command(rate_limits_group)
    main.add_command(import_legacy_command)
    main.add_command(worker_tokens_group)
    main.add_command(tasks_group)


register_commands()
