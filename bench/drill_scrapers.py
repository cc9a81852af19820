"""The drill's platforms: the ``demo`` scraper under more platform names, so the drill spreads
its tasks over several platforms (each with its own queues, leases and rate state)."""

from __future__ import annotations

from scrapers.demo import scrape_demo
from scrapers.registry import register_scraper

DRILL_PLATFORMS = ("demo", "drill_north", "drill_south")

for _name in DRILL_PLATFORMS[1:]:
    register_scraper(_name)(scrape_demo)
