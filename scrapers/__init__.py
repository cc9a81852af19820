"""Scrapers by platform. A scraper author writes one function and registers it:

    @register_scraper("qpublic")
    def scrape_qpublic(target: ScrapeTarget) -> dict[str, str]: ...

``tasks.scrape`` does the ledger bookkeeping around it (running → succeeded / failed).
Raise ``ScrapeFailed`` with a reason for an expected failure; anything else counts as a
``parser_bug``. A Celery worker should consume only the scrape queues of
``registered_platforms()``: a task of a platform it cannot scrape is dead-lettered at once
with the reason ``no_scraper``.
"""

from scrapers.registry import (
    ScrapeFailed,
    ScrapeTarget,
    get_scraper,
    register_scraper,
    registered_platforms,
)

__all__ = [
    "ScrapeFailed",
    "ScrapeTarget",
    "get_scraper",
    "register_scraper",
    "registered_platforms",
]
