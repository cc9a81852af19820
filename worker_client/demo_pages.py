"""Scraping for the reference worker: the fleet's own scrapers (``scrapers``), the same ones
the Celery workers run, plus the page a county site would have shown for the parcel."""

from __future__ import annotations

import html
import time
from dataclasses import dataclass

from scrapers import ScrapeTarget, get_scraper
from scrapers.registry import ScrapeFailed
from worker_client.wire import WorkTask


@dataclass(frozen=True)
class ScrapedPage:
    data: dict[str, str]
    page: bytes  # the rendered HTML, uploaded as the raw file
    parse_duration_ms: int


def scrape_task(task: WorkTask) -> ScrapedPage:
    """Run the platform's scraper; raises ``ScrapeFailed`` as the scraper does."""
    scraper = get_scraper(task.platform)
    if scraper is None:
        raise ScrapeFailed(
            "other", f"no scraper for platform {task.platform!r} here", is_retryable=False
        )
    target = ScrapeTarget(
        task_id=str(task.task_id),
        platform=task.platform,
        state=task.target.state,
        county=task.target.county,
        parcel_id=task.target.parcel_id,
        url=task.target.url,
        attempt=task.attempt,
    )
    started = time.perf_counter()
    data = scraper(target)
    elapsed_ms = int((time.perf_counter() - started) * 1000)
    return ScrapedPage(data, render_parcel_page(task, data), elapsed_ms)


def render_parcel_page(task: WorkTask, data: dict[str, str]) -> bytes:
    """A county-site-like HTML page of the parcel (every value escaped)."""
    rows = "\n".join(
        f"<tr><th>{html.escape(key)}</th><td>{html.escape(value)}</td></tr>"
        for key, value in sorted(data.items())
    )
    title = html.escape(f"{task.target.county} {task.target.state} parcel {task.target.parcel_id}")
    return (
        f"<!doctype html>\n<html><head><meta charset='utf-8'><title>{title}</title></head>\n"
        f"<body><h1>{title}</h1>\n<table>\n{rows}\n</table></body></html>\n"
    ).encode()
