"""Parcel search: typed filters, four sort keys, keyset pagination with a total order.

The order is (sort value, id), both in the requested direction, so every row has exactly one
place and a cursor (last value, last id) starts the next page right after it: inserts and
deletes elsewhere never shift a page (unlike OFFSET). A row whose own sort value changes
between pages moves within the order, so it can be seen twice or not at all in that walk;
every row whose sort value stays put is seen exactly once.
Rows whose sort value is NULL come last in either direction: the walk first covers non-NULL
values through the keyset index, then the NULL ones by id.
"""

from __future__ import annotations

import dataclasses
import enum
import math
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import ColumnElement, Select, select, text, tuple_
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, aliased

from db.models import Parcel
from db.models.parcel_search import due_to_value_ratio
from services.errors import InvalidInput, ServiceUnavailable
from services.public.cursors import (
    Cursor,
    cursor_error,
    decode_cursor,
    encode_cursor,
    fingerprint_of,
)
from services.public.search_filters import (
    SearchFilters,
    filter_conditions,
    has_text_filters,
    text_conditions,
)

MAX_LIMIT = 100
DEFAULT_LIMIT = 20
_QUERY_CANCELED = "57014"
# Rows of the sort order a substring search tests one by one before using the trigram index
# (and the most a second, longer walk may test when the first one found the text common).
HEAD_ROWS = 2000
MAX_HEAD_ROWS = 20_000


class SortKey(enum.StrEnum):
    TOTAL_DUE = "total_due"
    ASSESSED_VALUE = "assessed_value"
    DUE_TO_VALUE = "due_to_value"
    UPDATED_AT = "updated_at"


SORT_CHOICES = [f"{sign}{key.value}" for key in SortKey for sign in ("-", "")]


@dataclass(frozen=True)
class SearchSort:
    key: SortKey
    is_descending: bool = True

    @property
    def text(self) -> str:
        return f"{'-' if self.is_descending else ''}{self.key.value}"

    @classmethod
    def parse(cls, value: str) -> SearchSort:
        """``total_due`` ascending, ``-total_due`` descending."""
        name = value.removeprefix("-")
        try:
            key = SortKey(name)
        except ValueError:
            message = f"unknown sort {value!r}; choose from {SORT_CHOICES}"
            raise InvalidInput(
                f"sort: {message}", details=[{"field": "sort", "message": message}]
            ) from None
        return cls(key=key, is_descending=value.startswith("-"))


DEFAULT_SORT = SearchSort(SortKey.UPDATED_AT, is_descending=True)


@dataclass(frozen=True)
class SearchHit:
    parcel: Parcel
    due_to_value: Decimal | None


@dataclass(frozen=True)
class SearchPage:
    items: list[SearchHit]
    next_cursor: str | None
    sort: SearchSort
    limit: int


def sort_expression(key: SortKey) -> ColumnElement[Any]:
    """The expression each keyset index is built on (see ``db/models/parcel_search.py``)."""
    columns: dict[SortKey, ColumnElement[Any]] = {
        SortKey.TOTAL_DUE: Parcel.total_due,  # type: ignore[dict-item]
        SortKey.ASSESSED_VALUE: Parcel.assessed_value,  # type: ignore[dict-item]
        SortKey.DUE_TO_VALUE: due_to_value_ratio(),
        SortKey.UPDATED_AT: Parcel.updated_at,  # type: ignore[dict-item]
    }
    return columns[key]


def search_parcels(
    session: Session,
    filters: SearchFilters,
    *,
    sort: SearchSort = DEFAULT_SORT,
    limit: int = DEFAULT_LIMIT,
    cursor: str | None = None,
    include_nulls: bool = True,
    timeout_ms: int | None = None,
) -> SearchPage:
    """One page of parcels matching ``filters`` (already normalised) in ``sort`` order."""
    if not 1 <= limit <= MAX_LIMIT:
        message = f"must be between 1 and {MAX_LIMIT}"
        raise InvalidInput(f"limit: {message}", details=[{"field": "limit", "message": message}])
    fingerprint = fingerprint_of(
        {**dataclasses.asdict(filters), "sort": sort.text, "nulls": include_nulls}
    )
    position = decode_cursor(cursor, fingerprint=fingerprint) if cursor else None
    if timeout_ms is not None:
        session.execute(text(f"SET LOCAL statement_timeout = {int(timeout_ms)}"))
    try:
        rows = _fetch_page(session, filters, sort, position, limit, include_nulls=include_nulls)
    except OperationalError as exc:
        if getattr(exc.orig, "pgcode", None) == _QUERY_CANCELED:
            raise ServiceUnavailable(
                f"the search took longer than {timeout_ms} ms; narrow it with state or county"
            ) from exc
        raise
    has_more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = None
    if has_more:
        _, _, last_value = rows[-1]
        next_cursor = encode_cursor(
            Cursor(_value_text(last_value), last_id=rows[-1][0].id, fingerprint=fingerprint)
        )
    hits = [SearchHit(parcel=parcel, due_to_value=ratio) for parcel, ratio, _ in rows]
    return SearchPage(items=hits, next_cursor=next_cursor, sort=sort, limit=limit)


Row = tuple[Parcel, Decimal | None, object]


def _fetch_page(
    session: Session,
    filters: SearchFilters,
    sort: SearchSort,
    position: Cursor | None,
    limit: int,
    *,
    include_nulls: bool,
) -> list[Row]:
    expression = sort_expression(sort.key)
    base = select(
        Parcel, due_to_value_ratio().label("due_to_value"), expression.label("sort_value")
    ).where(*filter_conditions(filters))
    rows: list[Row] = []
    is_rare = False  # a substring the walk did not find enough of: go to the index at once
    if position is None or position.value is not None:
        valued = _valued_query(base, expression, sort, position)
        rows, is_rare = _run(session, valued, filters, sort, limit + 1, is_rare=False)
    if len(rows) <= limit and include_nulls:
        after_id = position.last_id if position is not None and position.value is None else None
        nulls = _nulls_query(base, expression, sort, after_id)
        rows += _run(session, nulls, filters, sort, limit + 1 - len(rows), is_rare=is_rare)[0]
    return rows


def _run(
    session: Session,
    query: Select[Any],
    filters: SearchFilters,
    sort: SearchSort,
    count: int,
    *,
    is_rare: bool,
) -> tuple[list[Row], bool]:
    """The first ``count`` rows of ``query`` that also match the owner/address substrings.

    A common substring ("smith": tens of thousands of parcels) is found fastest by walking
    the sort index and testing each row; a rare one through the trigram index. Trigram
    statistics cannot tell the two apart (a word's trigrams are not independent), so the
    walk is tried first over ``HEAD_ROWS`` rows of the order (then once more, further, if
    what it found says a longer walk will fill the page): a page found there is exactly the
    page, since those rows come first in the order; otherwise the index answers.
    Returns the rows and whether the index had to answer (the substring is rare).
    """
    if not has_text_filters(filters):
        return _rows(session, query.limit(count)), False
    head_rows = 0 if is_rare else HEAD_ROWS
    while head_rows:
        rows = _rows(session, _matches_in_head(query, filters, sort, count, head_rows))
        if len(rows) >= count:
            return rows, False
        head_rows = _longer_head(head_rows, found=len(rows), wanted=count)
    indexed = query.where(*text_conditions(filters, Parcel.__table__.c, use_index=True))
    return _rows(session, indexed.limit(count)), True


def _longer_head(head_rows: int, *, found: int, wanted: int) -> int:
    """How far a second walk should go, judging by the density seen; 0 when not worth it."""
    if found == 0 or head_rows > HEAD_ROWS:
        return 0
    estimate = math.ceil(wanted * head_rows / found * 1.5)
    return estimate if estimate <= MAX_HEAD_ROWS else 0


def _matches_in_head(
    query: Select[Any], filters: SearchFilters, sort: SearchSort, count: int, head_rows: int
) -> Select[Any]:
    head = query.limit(head_rows).subquery("head")
    order = [head.c.sort_value, head.c.id]
    return (
        select(aliased(Parcel, head), head.c.due_to_value, head.c.sort_value)
        .where(*text_conditions(filters, head.c, use_index=False))
        .order_by(*[c.desc() if sort.is_descending else c.asc() for c in order])
        .limit(count)
    )


def _valued_query(
    base: Select[Any], expression: ColumnElement[Any], sort: SearchSort, position: Cursor | None
) -> Select[Any]:
    query = base.where(expression.is_not(None))
    if position is not None and position.value is not None:
        boundary = tuple_(parse_cursor_value(sort.key, position.value), position.last_id)
        keyset = tuple_(expression, Parcel.id)
        query = query.where(keyset < boundary if sort.is_descending else keyset > boundary)
    if sort.is_descending:
        return query.order_by(expression.desc(), Parcel.id.desc())
    return query.order_by(expression.asc(), Parcel.id.asc())


def _nulls_query(
    base: Select[Any], expression: ColumnElement[Any], sort: SearchSort, after_id: int | None
) -> Select[Any]:
    query = base.where(expression.is_(None))
    if after_id is not None:
        query = query.where(Parcel.id < after_id if sort.is_descending else Parcel.id > after_id)
    # Ordering by the (all NULL) sort value too lets the keyset index give the order: the
    # planner does not treat "IS NULL" as fixing the column the way "=" would.
    if sort.is_descending:
        return query.order_by(expression.desc(), Parcel.id.desc())
    return query.order_by(expression.asc(), Parcel.id.asc())


def _rows(session: Session, query: Select[Any]) -> list[Row]:
    return [(row[0], row[1], row[2]) for row in session.execute(query)]


def _value_text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


# Far beyond any amount or ratio the numeric columns hold, far inside what PostgreSQL parses.
_MAX_CURSOR_MAGNITUDE = Decimal(10) ** 20


def parse_cursor_value(key: SortKey, value: str) -> object:
    """The sort value a cursor carries, in its column's type; 422 naming ``cursor`` if it
    is not one that column could hold."""
    try:
        if key is SortKey.UPDATED_AT:
            return datetime.fromisoformat(value)
        number = Decimal(value)
    except (ValueError, InvalidOperation) as exc:
        raise cursor_error("cursor is malformed") from exc
    if not number.is_finite() or abs(number) >= _MAX_CURSOR_MAGNITUDE:
        raise cursor_error("cursor is malformed")
    return number
