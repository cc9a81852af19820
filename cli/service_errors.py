"""Command groups whose service errors (not found, invalid input ...) print one clear line."""

from __future__ import annotations

import click

from services.errors import ServiceError


class ServiceErrorGroup(click.Group):
    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except ServiceError as exc:
            raise click.ClickException(exc.message) from exc
