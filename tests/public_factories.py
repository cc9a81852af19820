"""Typed factories for the public API tests. Parcels are written through the ingestion
batch (``services.ingest.batch.ingest_result_items``), as real results are."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from db.models import Parcel
from services.ingest.batch import ingest_result_items
from services.parcel_identity import normalize_county, normalize_state
from services.public.api_keys import IssuedKey, create_api_key

_sequence = itertools.count(1)


@dataclass(frozen=True)
class ParcelSpec:
    state: str = "FL"
    county: str = "Dixie"
    parcel_id: str | None = None
    owner: str | None = None
    address: str | None = None
    total_due: str | None = None  # as a scraper sends it, e.g. "$1,234.56"
    assessed_value: str | None = None
    property_type: str | None = None
    delinquent: str | None = None  # "Y" / "N"
    scraped_at: datetime | None = None
    extra: dict[str, Any] | None = None


def result_item(spec: ParcelSpec) -> dict[str, Any]:
    number = next(_sequence)
    data: dict[str, Any] = {
        "owner_name": spec.owner,
        "situs_address": spec.address,
        "total_due": spec.total_due,
        "assessed_value": spec.assessed_value,
        "property_type": spec.property_type,
        "delinquent": spec.delinquent,
        **(spec.extra or {}),
    }
    scraped_at = spec.scraped_at or datetime.now(UTC) - timedelta(minutes=1)
    return {
        "task_id": None,
        "parcel_id": spec.parcel_id or f"99-{number:06d}-00",
        "platform": "demo",
        "state": spec.state,
        "county": spec.county,
        "data": {key: value for key, value in data.items() if value is not None},
        "scraped_at": scraped_at.isoformat(),
        "parse_duration_ms": 1.0,
    }


def add_parcels(session: Session, specs: list[ParcelSpec]) -> list[Parcel]:
    """Ingest ``specs`` in one batch, commit, and return the rows in the order given."""
    items = [result_item(spec) for spec in specs]
    outcome = ingest_result_items(session, items)
    assert outcome.rejected == 0, outcome.errors
    session.commit()
    keys = [(item["parcel_id"], item["state"], item["county"]) for item in items]
    rows = {(p.parcel_id, p.state, p.county): p for p in session.query(Parcel).all()}
    return [rows[(pid, normalize_state(st), normalize_county(co))] for pid, st, co in keys]


def add_api_key(session: Session, tier: str, owner: str = "test owner") -> IssuedKey:
    issued = create_api_key(session, tier=tier, owner=owner)
    session.commit()
    return issued
