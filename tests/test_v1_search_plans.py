"""The main search shapes are answered through indexes (checked on the query plans).

The table is small here, so sequential scans are disabled for the EXPLAIN: what is checked is
that the planner *can* answer each shape from the intended index, in order, without a sort.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.orm import Session

from db.session import get_engine
from services.public.search import SearchSort, SortKey, search_parcels
from services.public.search_filters import make_filters
from services.public.top_lists import top_list
from tests.public_factories import ParcelSpec, add_parcels

PLACES = [("FL", "dixie"), ("FL", "levy"), ("AZ", "apache"), ("AZ", "pima"), ("NJ", "ocean"),
          ("NM", "taos"), ("FL", "leon")]  # fmt: skip
OWNERS = ["SMITH JOHN", "JONES MARY", "GARCIA ANA", "BROWN LLC", "NGUYEN TRAN", "DAVIS TRUST"]


@pytest.fixture
def many_parcels(db_session: Session) -> None:
    specs = [
        ParcelSpec(
            state=PLACES[n % len(PLACES)][0],
            county=PLACES[n % len(PLACES)][1],
            parcel_id=f"{n:05d}-X",
            owner=f"{OWNERS[n % len(OWNERS)]} {n}",
            address=f"{n} {('Oak', 'Pine', 'Main')[n % 3]} Street",
            total_due=f"{(n * 37) % 5000}.{n % 100:02d}",
            assessed_value=f"{10_000 + (n * 91) % 90_000}",
            delinquent="Y" if n % 5 == 0 else "N",
        )
        for n in range(2000)
    ]
    add_parcels(db_session, specs)
    db_session.execute(text("UPDATE parcels SET updated_at = now() - id * interval '1 minute'"))
    db_session.commit()
    # As autovacuum leaves a table: statistics, and the GIN indexes' pending lists merged.
    with get_engine().connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("VACUUM ANALYZE parcels"))


@contextmanager
def captured_statements() -> Iterator[list[tuple[str, Any]]]:
    statements: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, params: Any, *_: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append((cursor.mogrify(statement, params).decode(), params))

    engine = get_engine()
    event.listen(engine, "before_cursor_execute", capture)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", capture)


def plan_of(session: Session, sql: str) -> str:
    session.execute(text("SET LOCAL enable_seqscan = off"))
    rows = session.execute(text(f"EXPLAIN {sql}")).scalars()
    return "\n".join(rows)


def first_page_sql(session: Session, **search: Any) -> list[str]:
    with captured_statements() as statements:
        search_parcels(session, **search)
    session.rollback()
    return [sql for sql, _ in statements]


@pytest.mark.usefixtures("many_parcels")
@pytest.mark.parametrize(
    ("scope", "sort_key", "index"),
    [
        ({"state": "FL", "county": "dixie"}, SortKey.TOTAL_DUE, "ix_parcels_search_county_due"),
        ({"state": "FL", "county": "levy"}, SortKey.DUE_TO_VALUE, "ix_parcels_search_county_ratio"),
        ({"state": "AZ"}, SortKey.ASSESSED_VALUE, "ix_parcels_search_state_value"),
        ({"state": "AZ"}, SortKey.UPDATED_AT, "ix_parcels_search_state_updated"),
        ({}, SortKey.TOTAL_DUE, "ix_parcels_search_nation_due"),
    ],
)
def test_sorted_searches_walk_the_keyset_index_without_sorting(
    db_session: Session, scope: dict[str, str], sort_key: SortKey, index: str
) -> None:
    filters = make_filters(**scope, is_delinquent=True, total_due_min=Decimal("10"))  # type: ignore[arg-type]
    page = search_parcels(db_session, filters, sort=SearchSort(sort_key), limit=5)
    db_session.rollback()
    [first_sql] = first_page_sql(db_session, filters=filters, sort=SearchSort(sort_key), limit=5)
    plan = plan_of(db_session, first_sql)
    assert index in plan, plan
    assert "Sort" not in plan.split(index)[0], plan  # the index gives the order
    db_session.rollback()

    # The next page starts inside the index (row comparison as an index condition).
    assert page.next_cursor is not None
    [next_sql] = first_page_sql(
        db_session, filters=filters, sort=SearchSort(sort_key), limit=5, cursor=page.next_cursor
    )
    plan = plan_of(db_session, next_sql)
    assert index in plan and "Index Cond" in plan and "ROW(" in plan.upper(), plan


@pytest.mark.usefixtures("many_parcels")
@pytest.mark.parametrize(
    ("field", "needle", "index"),
    [
        ("owner", "smith john 1234", "ix_parcels_owner_trigrams"),
        ("address", "1234 pine st", "ix_parcels_address_trigrams"),
    ],
)
def test_a_rare_substring_is_found_through_the_trigram_index(
    db_session: Session, field: str, needle: str, index: str
) -> None:
    filters = make_filters(**{field: needle})  # type: ignore[arg-type]
    statements = first_page_sql(db_session, filters=filters, sort=SearchSort(SortKey.TOTAL_DUE))
    walk, indexed = statements[:2]  # non-NULL dues: walk, then index (then the same for NULLs)
    assert "ix_parcels_search_nation_due" in plan_of(db_session, walk)
    db_session.rollback()
    plan = plan_of(db_session, indexed)
    assert f"Bitmap Index Scan on {index}" in plan, plan


@pytest.mark.usefixtures("many_parcels")
def test_a_common_substring_is_found_by_walking_the_sort_index(db_session: Session) -> None:
    filters = make_filters(state="FL", owner="smith")
    [walk] = first_page_sql(db_session, filters=filters, sort=SearchSort(SortKey.UPDATED_AT))
    plan = plan_of(db_session, walk)
    assert "ix_parcels_search_state_updated" in plan and "trigrams" not in plan, plan


@pytest.mark.usefixtures("many_parcels")
def test_top_lists_use_the_keyset_indexes(db_session: Session) -> None:
    scope = make_filters(state="FL", county="dixie")
    with captured_statements() as statements:
        top_list(db_session, "highest-due", scope=scope, limit=10)
    db_session.rollback()
    assert "ix_parcels_search_county_due" in plan_of(db_session, statements[0][0])
