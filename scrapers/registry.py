"""The scraper registry: platform name → scraping function."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

# Modules that register scrapers on import; a fleet adds its own here or imports them itself.
SCRAPER_MODULES = ("scrapers.demo",)


@dataclass(frozen=True)
class ScrapeTarget:
    task_id: str
    platform: str
    state: str
    county: str
    parcel_id: str
    url: str | None
    attempt: int


class ScrapeFailed(Exception):
    """An expected failure: ``reason`` is one of the fail reasons of the worker contract;
    ``retry_after_s`` is a site's Retry-After, if it sent one (it pauses the site's budget)."""

    def __init__(
        self,
        reason: str,
        message: str,
        *,
        is_retryable: bool = True,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.is_retryable = is_retryable
        self.retry_after_s = retry_after_s


Scraper = Callable[[ScrapeTarget], dict[str, str]]
_scrapers: dict[str, Scraper] = {}
_loaded = False


def register_scraper(platform: str) -> Callable[[Scraper], Scraper]:
    def decorate(function: Scraper) -> Scraper:
        _scrapers[platform] = function
        return function

    return decorate


def _load_scraper_modules() -> None:
    global _loaded
    if not _loaded:
        for module in SCRAPER_MODULES:
            importlib.import_module(module)
        _loaded = True


def get_scraper(platform: str) -> Scraper | None:
    _load_scraper_modules()
    return _scrapers.get(platform)


def registered_platforms() -> list[str]:
    """Platforms this process can scrape: the only scrape queues its Celery worker should take."""
    _load_scraper_modules()
    return sorted(_scrapers)
