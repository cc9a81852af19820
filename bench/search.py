"""Latency of the public search on 1,000,000 synthetic parcels, per query shape.

Loads the parcels with COPY (``bench/search_data.py``) into a table without the search
indexes, then builds them with migration 0004 itself (downgrade to 0003, load, upgrade), runs
ANALYZE, and times each shape through the service functions the API calls (SQL, ORM rows,
cursor), after a warm-up. Targets (p95): county-scoped filtered sorted searches <= 20 ms,
state-wide <= 50 ms, owner/address substring <= 50 ms. The baselines are what the old API
did, on the same table in the same run: ``ILIKE '%...%'`` substring search without the
trigram index, and OFFSET paging instead of the keyset cursor.
"""

from __future__ import annotations

import random
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import text
from sqlalchemy.orm import Session

from bench.environment import REPO_ROOT
from bench.search_data import FIRST_NAMES, NOW, STREETS, SURNAMES, County, load_parcels

TOTAL_PARCELS = 1_000_000
RUNS = 100
BASELINE_RUNS = 10
Query = Callable[[Session], object]


@dataclass(frozen=True)
class Shape:
    name: str
    target_ms: float | None
    make: Callable[[random.Random], Query]  # a fresh query (new parameters) per run
    runs: int = RUNS


class Places:
    """Counties and states drawn like a random parcel's (big counties more often)."""

    def __init__(self, sizes: list[tuple[County, int]]) -> None:
        self.counties = [county for county, size in sizes if size >= 1000]
        self.weights = [size for _, size in sizes if size >= 1000]
        self.states = sorted({c.state for c in self.counties})

    def county(self, rng: random.Random) -> dict[str, str]:
        county = rng.choices(self.counties, self.weights)[0]
        return {"state": county.state, "county": county.county}

    def state(self, rng: random.Random) -> dict[str, str]:
        return {"state": rng.choice(["FL", "FL", "NM", "NJ", "AZ"])}


def _search(sort: str, limit: int = 20, **filters: Any) -> Query:
    from services.public.search import SearchSort, search_parcels
    from services.public.search_filters import make_filters

    def query(session: Session) -> object:
        return search_parcels(
            session, make_filters(**filters), sort=SearchSort.parse(sort), limit=limit
        )

    return query


def _second_page(sort: str, **filters: Any) -> Query:
    from services.public.search import SearchSort, search_parcels
    from services.public.search_filters import make_filters

    def query(session: Session) -> object:
        first = search_parcels(session, make_filters(**filters), sort=SearchSort.parse(sort))
        started = time.perf_counter()
        search_parcels(
            session, make_filters(**filters), sort=SearchSort.parse(sort), cursor=first.next_cursor
        )
        return time.perf_counter() - started  # only the follow-up page is timed

    return query


def _top(name: str, **scope: Any) -> Query:
    from services.public.search_filters import make_filters
    from services.public.top_lists import top_list

    return lambda session: top_list(session, name, scope=make_filters(**scope), limit=20)


def _sql(sql: str, **params: Any) -> Query:
    return lambda session: session.execute(text(sql), params).all()


def _full_name(rng: random.Random) -> str:
    return f"{rng.choice(SURNAMES)} {rng.choice(FIRST_NAMES)}"


def _surname(rng: random.Random) -> str:
    return rng.choice(SURNAMES[:20])  # the common ones: thousands of matches each


def shapes(places: Places) -> list[Shape]:
    county, state = places.county, places.state
    week_ago = NOW - timedelta(days=7)
    ilike = (
        "SELECT id FROM parcels WHERE {column} ILIKE :q ORDER BY updated_at DESC, id DESC LIMIT 21"
    )
    return [
        Shape("county: delinquent, due >= $500, by due desc", 20, lambda r: _search(
            "-total_due", **county(r), is_delinquent=True, total_due_min=Decimal(500))),
        Shape("county: assessed 50k-300k, by due/value desc", 20, lambda r: _search(
            "-due_to_value", **county(r), assessed_value_min=Decimal(50_000),
            assessed_value_max=Decimal(300_000))),
        Shape("county: property type, by updated desc", 20, lambda r: _search(
            "-updated_at", **county(r), property_type="MOBILE HOME")),
        Shape("county: owner surname, by due desc", 20, lambda r: _search(
            "-total_due", **county(r), owner=_surname(r))),
        Shape("county: by due asc, second page (cursor)", 20, lambda r: _second_page(
            "total_due", **county(r), total_due_min=Decimal("0.01"))),
        Shape("county: top list recently-delinquent", 20, lambda r: _top(
            "recently-delinquent", **county(r))),
        Shape("state: delinquent, by due desc", 50, lambda r: _search(
            "-total_due", **state(r), is_delinquent=True)),
        Shape("state: due $1k-$5k, by due/value desc", 50, lambda r: _search(
            "-due_to_value", **state(r), total_due_min=Decimal(1000),
            total_due_max=Decimal(5000))),
        Shape("state: updated in 7 days, by updated desc", 50, lambda r: _search(
            "-updated_at", **state(r), updated_since=week_ago)),
        Shape("state: commercial, by assessed desc", 50, lambda r: _search(
            "-assessed_value", **state(r), property_type="COMMERCIAL")),
        Shape("state: top list due-to-value", 50, lambda r: _top("due-to-value", **state(r))),
        Shape("nation: top list highest-due", 50, lambda r: _top("highest-due")),
        Shape("owner: full name substring", 50, lambda r: _search(
            "-updated_at", owner=_full_name(r))),
        Shape("owner: common surname substring", 50, lambda r: _search(
            "-updated_at", owner=_surname(r))),
        Shape("owner: uncommon surname substring", 50, lambda r: _search(
            "-updated_at", owner=r.choice(SURNAMES[60:]))),
        Shape("owner: full name in a state", 50, lambda r: _search(
            "-total_due", **state(r), owner=_full_name(r))),
        Shape("address: number and street", 50, lambda r: _search(
            "-updated_at", address=f"{r.randint(100, 9999)} {r.choice(STREETS)}")),
        Shape("address: street name only", 50, lambda r: _search(
            "-updated_at", address=r.choice(STREETS))),
        Shape("baseline: owner ILIKE, no trigram index", None, lambda r: _sql(
            ilike.format(column="owner_name"), q=f"%{_full_name(r)}%"), BASELINE_RUNS),
        Shape("baseline: address ILIKE, no trigram index", None, lambda r: _sql(
            ilike.format(column="situs_address"),
            q=f"%{r.randint(100, 9999)} {r.choice(STREETS)}%"), BASELINE_RUNS),
        Shape("baseline: state page 200 by OFFSET", None, lambda r: _sql(
            "SELECT id FROM parcels WHERE state = :s ORDER BY total_due DESC NULLS LAST, id DESC "
            "OFFSET 4000 LIMIT 20", s=state(r)["state"]), BASELINE_RUNS),
    ]  # fmt: skip


def _time_shape(shape: Shape, rng: random.Random) -> list[float]:
    from db.session import new_session

    timings = []
    with new_session() as session:
        for run_number in range(shape.runs + 3):  # three warm-up runs
            query = shape.make(rng)
            started = time.perf_counter()
            result = query(session)
            elapsed = time.perf_counter() - started
            session.rollback()
            if isinstance(result, float):
                elapsed = result
            if run_number >= 3:
                timings.append(elapsed * 1000)
    return timings


def _report(shape: Shape, timings: list[float]) -> None:
    cuts = statistics.quantiles(timings, n=100, method="inclusive")
    p50, p95, p99 = cuts[49], cuts[94], cuts[98]
    verdict = "" if shape.target_ms is None else (
        f"target {shape.target_ms:>3.0f}  {'ok' if p95 <= shape.target_ms else 'MISSED'}"
    )  # fmt: skip
    sys.stdout.write(
        f"  {shape.name:<46} {p50:7.1f} {p95:7.1f} {p99:7.1f} ms  (n={len(timings)})  {verdict}\n"
    )


def _alembic(database_url: str) -> Config:
    config = Config(str(REPO_ROOT / "alembic.ini"))
    config.attributes["database_url"] = database_url
    config.attributes["configure_logging"] = False
    return config


def prepare_table(total: int) -> list[tuple[County, int]]:
    """Load ``total`` parcels and build the search indexes with migration 0004."""
    from db.session import get_engine
    from settings import get_settings

    url = get_settings().database_url
    engine = get_engine()
    with engine.begin() as connection:
        name = connection.execute(text("SELECT current_database()")).scalar_one()
        connection.execute(text(f"ALTER DATABASE \"{name}\" SET maintenance_work_mem = '1GB'"))
    command.downgrade(_alembic(url), "0003")
    started = time.perf_counter()
    raw = engine.raw_connection()
    try:
        sizes = load_parcels(raw, total)
    finally:
        raw.close()
    loaded = time.perf_counter()
    command.upgrade(_alembic(url), "head")
    indexed = time.perf_counter()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("VACUUM ANALYZE parcels"))
    analyzed = time.perf_counter()
    sys.stdout.write(
        f"  loaded {total:,} parcels by COPY in {loaded - started:.0f} s; migration 0004 "
        f"(14 indexes) in {indexed - loaded:.0f} s; VACUUM ANALYZE in {analyzed - indexed:.0f} s\n"
    )
    return sizes


def run() -> None:
    from db.session import get_engine

    sys.stdout.write(f"bench search ({TOTAL_PARCELS:,} synthetic parcels)\n")
    sizes = prepare_table(TOTAL_PARCELS)
    with get_engine().connect() as connection:
        size = connection.execute(
            text("SELECT pg_size_pretty(pg_total_relation_size('parcels'))")
        ).scalar_one()
    sys.stdout.write(f"  parcels table with indexes: {size}\n")
    sys.stdout.write(f"  {'shape':<46} {'p50':>7} {'p95':>7} {'p99':>7}\n")
    rng = random.Random(11)
    for shape in shapes(Places(sizes)):
        _report(shape, _time_shape(shape, rng))
