"""``python -m bench.drill_http_worker``: the reference HTTP worker, able to scrape the drill's
platforms."""

from bench import drill_scrapers  # noqa: F401  (registers the drill's platforms)
from worker_client.command_line import main

if __name__ == "__main__":
    raise SystemExit(main())
