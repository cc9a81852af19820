"""Scrapers by platform. A scraper author writes one function and registers it:

    @register_scraper("qpublic")
    def scrape_qpublic(target: ScrapeTarget) -> dict[str, str]: ...

``tasks.scrape`` does the ledger bookkeeping around it (running → succeeded / failed).
Raise ``ScrapeFailed`` with a reason for an expected failure; anything else counts as a
``parser_bug``.
"""

from scrapers.registry import ScrapeFailed, ScrapeTarget, get_scraper, register_scraper

__all__ = ["ScrapeFailed", "ScrapeTarget", "get_scraper", "register_scraper"]
