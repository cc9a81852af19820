"""Where the real demo data lives: ``shared/data`` beside the repository (as in CI)."""

from __future__ import annotations

from pathlib import Path

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
DIXIE_PARCEL_IDS = SHARED_DATA / "fl_dixie_parcel_ids.txt"
COUNTY_SOURCES = SHARED_DATA / "county_sources.csv"
JURISDICTIONS = SHARED_DATA / "us_jurisdictions_netronline.csv"
