"""The scraper registry and the deterministic ``demo`` platform."""

from __future__ import annotations

import re

import pytest

from scrapers import ScrapeFailed, ScrapeTarget, get_scraper
from scrapers.demo import demo_parcel


def target(parcel_id: str) -> ScrapeTarget:
    return ScrapeTarget("t-1", "demo", "FL", "dixie", parcel_id, None, 1)


def test_the_demo_parcel_is_the_same_for_the_same_id_and_looks_scraped() -> None:
    first = demo_parcel("01-08-13-0000-0363-0110")

    assert first == demo_parcel("01-08-13-0000-0363-0110")
    assert first != demo_parcel("01-08-13-0000-0363-0111")
    for key in ("total_due", "assessed_value", "market_value", "last_sale_price"):
        assert re.fullmatch(r"\$\d{1,3}(,\d{3})*\.\d{2}", first[key]), first[key]
    assert re.fullmatch(r"\d{2}/\d{2}/\d{4}", first["last_sale_date"])
    assert first["owner_name"] and first["situs_address"] and first["tax_year"].isdigit()


def test_the_registry_finds_the_demo_scraper_and_knows_no_other() -> None:
    scraper = get_scraper("demo")

    assert scraper is not None
    assert scraper(target("A-1")) == demo_parcel("A-1")
    assert get_scraper("nosuch") is None


def test_demo_failure_prefixes_raise_expected_failures() -> None:
    scraper = get_scraper("demo")
    assert scraper is not None

    with pytest.raises(ScrapeFailed) as flaky:
        scraper(target("FAIL-1"))
    with pytest.raises(ScrapeFailed) as broken:
        scraper(target("BROKEN-1"))

    assert (flaky.value.reason, flaky.value.is_retryable) == ("platform_down", True)
    assert (broken.value.reason, broken.value.is_retryable) == ("format_changed", False)


def test_only_the_demo_platform_is_registered_here() -> None:
    from scrapers import registered_platforms

    assert registered_platforms() == ["demo"]
