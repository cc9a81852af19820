"""Synthetic parcels for ``bench/search``, built from the real county list and id formats.

Counties: every county of ``shared/data/county_sources.csv`` (FL, AZ, NJ, NM; 90% of the
rows, sizes drawn log-normally so a few counties are large) and the other jurisdictions of
``us_jurisdictions_netronline.csv`` (10%). Parcel ids: the 5,085 real Dixie ids verbatim,
then ids shaped like each county's example in the county list (digits redrawn, letters and
punctuation kept), or like one of those formats for counties without an example.
Rows are written with COPY, straight into ``parcels``.
"""

from __future__ import annotations

import csv
import hashlib
import io
import itertools
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from services.errors import InvalidInput
from services.parcel_identity import normalize_county, normalize_state, parcel_key
from services.text_trigrams import text_trigrams

DATA_DIR = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
NOW = datetime(2026, 11, 26, tzinfo=UTC)
DIXIE_FORMAT = "010813-00003634-1100"


def _words(text: str) -> list[str]:
    return text.split()


SURNAMES = _words(
    "SMITH JOHNSON WILLIAMS BROWN JONES GARCIA MILLER DAVIS RODRIGUEZ MARTINEZ HERNANDEZ LOPEZ "
    "GONZALEZ WILSON ANDERSON THOMAS TAYLOR MOORE JACKSON MARTIN LEE PEREZ THOMPSON WHITE "
    "HARRIS SANCHEZ CLARK RAMIREZ LEWIS ROBINSON WALKER YOUNG ALLEN KING WRIGHT SCOTT TORRES "
    "NGUYEN HILL FLORES GREEN ADAMS NELSON BAKER HALL RIVERA CAMPBELL MITCHELL CARTER ROBERTS "
    "GOMEZ PHILLIPS EVANS TURNER DIAZ PARKER CRUZ EDWARDS COLLINS REYES STEWART MORRIS MORALES "
    "MURPHY COOK ROGERS GUTIERREZ ORTIZ MORGAN COOPER PETERSON BAILEY REED KELLY HOWARD RAMOS "
    "KIM COX WARD RICHARDSON WATSON BROOKS CHAVEZ WOOD JAMES BENNETT GRAY MENDOZA RUIZ HUGHES "
    "PRICE ALVAREZ CASTILLO SANDERS PATEL MYERS LONG ROSS FOSTER JIMENEZ POWELL JENKINS PERRY "
    "RUSSELL SULLIVAN BELL COLEMAN BUTLER HENDERSON BARNES GONZALES FISHER VASQUEZ SIMMONS "
    "OBRIEN WHITFIELD KOWALSKI DUPREE ABERNATHY QUINTERO LINDQVIST MCALLISTER OKAFOR"
)
FIRST_NAMES = _words(
    "JAMES MARY ROBERT PATRICIA JOHN JENNIFER MICHAEL LINDA DAVID ELIZABETH WILLIAM BARBARA "
    "RICHARD SUSAN JOSEPH JESSICA THOMAS SARAH CHARLES KAREN CHRISTOPHER LISA DANIEL NANCY "
    "MATTHEW BETTY ANTHONY MARGARET MARK SANDRA DONALD ASHLEY STEVEN KIMBERLY PAUL EMILY ANDREW "
    "DONNA JOSHUA MICHELLE KENNETH CAROL KEVIN AMANDA BRIAN DOROTHY GEORGE MELISSA TIMOTHY"
)
STREETS = _words(
    "OAK PINE MAIN CEDAR ELM MAPLE WASHINGTON LAKE HILL PARK WALNUT RIDGE MILL CHURCH RIVER "
    "SPRING MEADOW FOREST SUNSET MAGNOLIA CYPRESS PALM ORANGE GULF BAY HICKORY DOGWOOD WILLOW "
    "JACKSON LINCOLN JEFFERSON MADISON FRANKLIN HIGHLAND VALLEY COUNTRY CLUB MESA DESERT CANYON"
)
STREET_KINDS = ("ST", "AVE", "RD", "DR", "LN", "BLVD", "WAY", "CT", "HWY", "TRL")
PROPERTY_TYPES = (
    ("SINGLE FAMILY", 50), ("VACANT RESIDENTIAL", 15), ("MOBILE HOME", 10), ("CONDOMINIUM", 7),
    ("AGRICULTURAL", 7), ("COMMERCIAL", 6), ("MULTI-FAMILY", 3), ("INDUSTRIAL", 2),
)  # fmt: skip
COLUMNS = (
    "state", "county", "parcel_key", "parcel_id", "platform", "scraped_at", "data", "data_hash",
    "owner_name", "situs_address", "city", "zip", "property_type", "assessed_value",
    "market_value", "total_due", "tax_year", "is_delinquent", "delinquent_amount", "updated_at",
    "owner_trigrams", "address_trigrams",
)  # fmt: skip


@dataclass(frozen=True)
class County:
    state: str
    county: str
    id_format: str | None  # an example id from the county list, when it has one


def read_counties() -> tuple[list[County], list[County]]:
    """(curated county list, other US jurisdictions), states and counties normalised."""
    curated: list[County] = []
    state = ""
    with (DATA_DIR / "county_sources.csv").open(newline="") as handle:
        for row in list(csv.reader(handle))[1:]:
            state = row[0].strip() or state  # an empty state cell repeats the one above
            example = row[13].strip().lstrip("`") if len(row) > 13 else ""
            curated += _county(state, row[1], example or None)
    curated_names = {(c.state, c.county) for c in curated}
    others: list[County] = []
    with (DATA_DIR / "us_jurisdictions_netronline.csv").open(newline="") as handle:
        for row in list(csv.reader(handle))[1:]:
            for county in _county(row[0], row[1], None):
                if (county.state, county.county) not in curated_names:
                    others.append(county)
    return curated, _unique(others)


def _county(state: str, county: str, example: str | None) -> list[County]:
    try:
        return [County(normalize_state(state), normalize_county(county), example)]
    except InvalidInput:
        return []


def _unique(counties: list[County]) -> list[County]:
    return list({(c.state, c.county): c for c in counties}.values())


def county_sizes(total: int, rng: random.Random) -> list[tuple[County, int]]:
    curated, others = read_counties()
    sizes: list[tuple[County, int]] = []
    for group, share in ((curated, 0.9), (others, 0.1)):
        weights = [rng.lognormvariate(0, 1.0) for _ in group]
        scale = total * share / sum(weights)
        sizes += [
            (county, max(1, round(w * scale))) for county, w in zip(group, weights, strict=True)
        ]
    return sizes


def id_formats(curated: list[County]) -> list[str]:
    examples = [c.id_format for c in curated if c.id_format]
    return sorted(set(examples) | {DIXIE_FORMAT, "1-32-4N-4W-0000-00322-0300"})


def parcel_ids(county: County, count: int, formats: list[str], rng: random.Random) -> Iterator[str]:
    keys: set[str] = set()
    if (county.state, county.county) == ("FL", "dixie"):
        for real in (DATA_DIR / "fl_dixie_parcel_ids.txt").read_text().split()[:count]:
            keys.add(parcel_key(real))
            yield real
    shape = (
        county.id_format
        or formats[int(hashlib.sha256(county.county.encode()).hexdigest(), 16) % len(formats)]
    )
    while len(keys) < count:
        candidate = "".join(str(rng.randint(0, 9)) if ch.isdigit() else ch for ch in shape)
        key = parcel_key(candidate)
        if key not in keys:
            keys.add(key)
            yield candidate


# Zipf-like: the first surnames are common (SMITH about 5%), the last ones rare (0.4%).
_SURNAME_WEIGHTS = list(
    itertools.accumulate(1 / (rank + 1) ** 0.5 for rank in range(len(SURNAMES)))
)


def _owner(rng: random.Random) -> str:
    surname = rng.choices(SURNAMES, cum_weights=_SURNAME_WEIGHTS)[0]
    roll = rng.random()
    if roll < 0.70:
        return f"{surname} {rng.choice(FIRST_NAMES)}"
    if roll < 0.85:
        return f"{surname} {rng.choice(FIRST_NAMES)} & {rng.choice(FIRST_NAMES)}"
    if roll < 0.93:
        return f"{surname} FAMILY TRUST"
    return f"{rng.choice(STREETS)} {surname} HOLDINGS LLC"


def _row(county: County, parcel_id: str, rng: random.Random) -> list[str | None]:
    owner = _owner(rng)
    address = f"{rng.randint(1, 29999)} {rng.choice(STREETS)} {rng.choice(STREET_KINDS)}"
    ptype = rng.choices([p for p, _ in PROPERTY_TYPES], [w for _, w in PROPERTY_TYPES])[0]
    assessed = None if rng.random() < 0.05 else round(rng.lognormvariate(11.5, 0.9), 2)
    due_roll = rng.random()
    due = (
        None
        if due_roll < 0.10
        else 0.0
        if due_roll < 0.50
        else round(rng.lognormvariate(7.3, 1.1), 2)
    )
    delinquent = due is not None and due > 0 and rng.random() < 0.3
    updated = NOW - timedelta(seconds=rng.randint(0, 180 * 86400))
    data = {
        "Owner Name": owner, "Property Address": address, "Property Use": ptype,
        "Assessed Value": f"${assessed:,.2f}" if assessed else "",
        "Total Due": f"${due or 0:,.2f}", "Tax Year": "2025",
        "Delinquent": "Y" if delinquent else "N",
    }  # fmt: skip
    data_json = json.dumps(data, sort_keys=True)
    return [
        county.state, county.county, parcel_key(parcel_id), parcel_id, "demo", updated.isoformat(),
        data_json, hashlib.sha256(data_json.encode()).hexdigest(), owner, address,
        county.county.upper(), f"{rng.randint(10000, 99999)}", ptype,
        None if assessed is None else f"{assessed:.2f}",
        None if assessed is None else f"{assessed * 1.1:.2f}",
        None if due is None else f"{due:.2f}", "2025", "t" if delinquent else "f",
        f"{due:.2f}" if delinquent else None, updated.isoformat(),
        _array_text(text_trigrams(owner)), _array_text(text_trigrams(address)),
    ]  # fmt: skip


def _array_text(elements: list[str] | None) -> str | None:
    """A ``text[]`` literal (each element quoted), as the ingest writes it."""
    if elements is None:
        return None
    quoted = (e.replace("\\", "\\\\").replace('"', '\\"') for e in elements)
    return "{" + ",".join(f'"{e}"' for e in quoted) + "}"


def _copy_text(values: list[str | None]) -> str:
    def escape(value: str | None) -> str:
        if value is None:
            return "\\N"
        return value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")

    return "\t".join(escape(v) for v in values) + "\n"


def load_parcels(raw_connection: object, total: int, *, seed: int = 5) -> list[tuple[County, int]]:
    """COPY ``total`` synthetic parcels; returns each county with its number of parcels."""
    rng = random.Random(seed)
    curated, _ = read_counties()
    formats = id_formats(curated)
    sizes = county_sizes(total, rng)
    buffer = io.StringIO()
    cursor = raw_connection.cursor()  # type: ignore[attr-defined]
    for county, size in sizes:
        for parcel_id in parcel_ids(county, size, formats, rng):
            buffer.write(_copy_text(_row(county, parcel_id, rng)))
        if buffer.tell() > 32_000_000:
            _flush(cursor, buffer)
            buffer = io.StringIO()
    _flush(cursor, buffer)
    raw_connection.commit()  # type: ignore[attr-defined]
    return sizes


def _flush(cursor: object, buffer: io.StringIO) -> None:
    buffer.seek(0)
    cursor.copy_expert(  # type: ignore[attr-defined]
        f"COPY parcels ({', '.join(COLUMNS)}) FROM STDIN", buffer
    )
