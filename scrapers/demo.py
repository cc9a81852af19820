"""The ``demo`` platform: deterministic synthetic parcels derived from the parcel id.

Values come back as a county site shows them (``"$1,234.56"``, ``"12/31/2024"``), so the
whole pipeline (scrape → ingest → normalised columns) does real work. Two parcel-id prefixes
make failures on purpose: ``FAIL-`` (platform down, retryable) and ``BROKEN-`` (format
changed, not retryable).
"""

from __future__ import annotations

import hashlib
import time
from datetime import date, timedelta

from scrapers.registry import ScrapeFailed, ScrapeTarget, register_scraper
from settings import get_settings

_FIRST = ("JAMES", "MARY", "ROBERT", "PATRICIA", "JOHN", "LINDA", "DAVID", "BARBARA", "CARLOS")
_LAST = ("SMITH", "JOHNSON", "WILLIAMS", "BROWN", "GARCIA", "MILLER", "DAVIS", "LOPEZ", "HILL")
_STREETS = ("NE 351 HWY", "SE 19TH AVE", "CR 357", "MAIN ST", "PINE LN", "RIVER RD", "OAK DR")
_CITIES = (("CROSS CITY", "32628"), ("HORSESHOE BEACH", "32648"), ("OLD TOWN", "32680"))
_TYPES = ("SINGLE FAMILY", "MOBILE HOME", "VACANT RESIDENTIAL", "AGRICULTURAL", "COMMERCIAL")


def _money(cents: int) -> str:
    return f"${cents // 100:,}.{cents % 100:02d}"


def _digits(parcel_id: str) -> bytes:
    return hashlib.sha256(parcel_id.strip().upper().encode()).digest()


def demo_parcel(parcel_id: str) -> dict[str, str]:
    """The same parcel id always gives the same parcel."""
    h = _digits(parcel_id)
    land = 5_000_00 + int.from_bytes(h[0:3]) % 90_000_00
    improvement = int.from_bytes(h[3:6]) % 250_000_00
    market = land + improvement
    assessed = market * (70 + h[6] % 30) // 100
    total_due = assessed * (12 + h[7] % 10) // 1000
    is_delinquent = h[8] % 4 == 0
    city, zip_code = _CITIES[h[9] % len(_CITIES)]
    street = _STREETS[h[16] % len(_STREETS)]
    sale_date = date(2005, 1, 1) + timedelta(days=int.from_bytes(h[10:12]) % 7000)
    return {
        "parcel_id": parcel_id,
        "owner_name": f"{_LAST[h[12] % len(_LAST)]} {_FIRST[h[13] % len(_FIRST)]}",
        "situs_address": f"{100 + int.from_bytes(h[14:16]) % 9900} {street}",
        "city": city,
        "zip": zip_code,
        "property_type": _TYPES[h[17] % len(_TYPES)],
        "land_value": _money(land),
        "improvement_value": _money(improvement),
        "market_value": _money(market),
        "assessed_value": _money(assessed),
        "total_due": _money(total_due),
        "tax_year": str(2022 + h[18] % 4),
        "delinquent": "Yes" if is_delinquent else "No",
        "delinquent_amount": _money(total_due if is_delinquent else 0),
        "last_sale_date": sale_date.strftime("%m/%d/%Y"),
        "last_sale_price": _money(market * (80 + h[19] % 40) // 100),
    }


@register_scraper("demo")
def scrape_demo(target: ScrapeTarget) -> dict[str, str]:
    delay_s = get_settings().demo_scrape_delay_s
    if delay_s:
        time.sleep(delay_s)
    if target.parcel_id.upper().startswith("FAIL-"):
        raise ScrapeFailed("platform_down", f"demo site refused parcel {target.parcel_id}")
    if target.parcel_id.upper().startswith("BROKEN-"):
        raise ScrapeFailed(
            "format_changed", f"demo page layout unknown for {target.parcel_id}", is_retryable=False
        )
    return demo_parcel(target.parcel_id)
