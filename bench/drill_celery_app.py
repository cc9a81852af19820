"""``celery -A bench.drill_celery_app worker``: the gateway's Celery app, able to scrape the
drill's platforms."""

from bench import drill_scrapers  # noqa: F401  (registers the drill's platforms)
from tasks.app import app

__all__ = ["app"]
