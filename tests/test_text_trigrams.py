"""Stored trigrams: the ingest's Python trigrams agree with the SQL function the migration
used to fill existing rows, and odd characters survive the COPY into ``text[]``."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from services.ingest import ingest_result_items
from services.public.search import SearchSort, SortKey, search_parcels
from services.public.search_filters import make_filters
from services.text_trigrams import covering_trigrams, text_trigrams
from tests.test_ingest_batch import result_item

SAMPLES = [
    "SMITH JOHN",
    "  o'brien,   pat \t & \n mary ",
    'THE "QUOTED" {BRACED} TRUST\\LLC',
    "NÚÑEZ ÉLODIE",
    "ab",
    "",
]


@pytest.mark.parametrize("sample", SAMPLES)
def test_python_trigrams_equal_the_sql_function_the_migration_filled_rows_with(
    db_session: Session, sample: str
) -> None:
    sql = db_session.scalar(text("SELECT public_text_trigrams(:v)"), {"v": sample})

    assert set(text_trigrams(sample) or []) == set(sql)


def test_covering_trigrams_are_a_subset_that_spans_the_needle() -> None:
    needle = "smith john 1234"

    covering = covering_trigrams(needle)

    assert set(covering) <= set(text_trigrams(needle) or [])
    assert covering[0] == "smi" and covering[-1] == "234"
    assert covering_trigrams("ab") == []


def test_odd_characters_are_stored_and_found_by_substring_search(db_session: Session) -> None:
    owner = 'THE "QUOTED" {BRACED} TRUST\\LLC, ET AL'
    ingest_result_items(db_session, [result_item(data={"owner": owner, "total_due": "$1.00"})])
    db_session.commit()

    stored = db_session.scalar(text("SELECT owner_trigrams FROM parcels"))
    page = search_parcels(
        db_session,
        filters=make_filters(owner='"quoted" {braced} trust\\llc'),
        sort=SearchSort(SortKey.TOTAL_DUE),
    )

    assert set(stored) == set(text_trigrams(owner) or [])
    assert [hit.parcel.owner_name for hit in page.items] == [owner]
