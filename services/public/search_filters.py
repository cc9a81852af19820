"""Search filters: normalised once (errors name the query parameter), then turned into SQL."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Boolean, ColumnElement, Text, func, literal
from sqlalchemy.dialects.postgresql import ARRAY

from db.models import Parcel
from services.errors import InvalidInput
from services.parcel_identity import normalize_county, normalize_state
from services.text_trigrams import covering_trigrams

MIN_SUBSTRING_LENGTH = 3  # shorter text has no trigram, so no index could answer it


@dataclass(frozen=True)
class SearchFilters:
    state: str | None = None
    county: str | None = None
    owner: str | None = None
    address: str | None = None
    total_due_min: Decimal | None = None
    total_due_max: Decimal | None = None
    assessed_value_min: Decimal | None = None
    assessed_value_max: Decimal | None = None
    property_type: str | None = None
    is_delinquent: bool | None = None
    updated_since: datetime | None = None


def invalid_parameter(name: str, message: str) -> InvalidInput:
    return InvalidInput(f"{name}: {message}", details=[{"field": name, "message": message}])


def make_filters(
    *,
    state: str | None = None,
    county: str | None = None,
    owner: str | None = None,
    address: str | None = None,
    total_due_min: Decimal | None = None,
    total_due_max: Decimal | None = None,
    assessed_value_min: Decimal | None = None,
    assessed_value_max: Decimal | None = None,
    property_type: str | None = None,
    is_delinquent: bool | None = None,
    updated_since: datetime | None = None,
) -> SearchFilters:
    """Validate and normalise; every error names the query parameter at fault."""
    _check_range("total_due", total_due_min, total_due_max)
    _check_range("assessed_value", assessed_value_min, assessed_value_max)
    if updated_since is not None and updated_since.tzinfo is None:
        updated_since = updated_since.replace(tzinfo=UTC)
    return SearchFilters(
        state=_normalize_scope("state", state, normalize_state),
        county=_normalize_county(county, has_state=state is not None),
        owner=normalize_substring("owner", owner),
        address=normalize_substring("address", address),
        total_due_min=total_due_min,
        total_due_max=total_due_max,
        assessed_value_min=assessed_value_min,
        assessed_value_max=assessed_value_max,
        property_type=" ".join(property_type.split()).lower() if property_type else None,
        is_delinquent=is_delinquent,
        updated_since=updated_since,
    )


def _normalize_scope(name: str, value: str | None, normalize: Any) -> str | None:
    if value is None:
        return None
    try:
        result: str = normalize(value)
    except InvalidInput as exc:
        raise invalid_parameter(name, exc.message) from exc
    return result


def _normalize_county(county: str | None, *, has_state: bool) -> str | None:
    if county is not None and not has_state:
        raise invalid_parameter("county", "needs state as well (county names repeat across states)")
    return _normalize_scope("county", county, normalize_county)


def normalize_substring(name: str, value: str | None) -> str | None:
    """Lower case, single spaces; at least three characters so the trigram index can be used."""
    if value is None:
        return None
    normalized = " ".join(value.lower().split())
    if len(normalized) < MIN_SUBSTRING_LENGTH:
        raise invalid_parameter(name, f"needs at least {MIN_SUBSTRING_LENGTH} characters")
    if len(normalized) > 200:
        raise invalid_parameter(name, "must be at most 200 characters")
    return normalized


def _check_range(name: str, low: Decimal | None, high: Decimal | None) -> None:
    if low is not None and high is not None and low > high:
        raise invalid_parameter(f"{name}_min", f"is larger than {name}_max")


def contains_text(column: Any, needle: str) -> ColumnElement[bool]:
    """The substring test itself (normalised case and spaces); cheap, but no index."""
    normalized = func.public_text_normalize(column)
    return func.strpos(normalized, func.public_text_normalize(needle)) > 0


def text_conditions(filters: SearchFilters, columns: Any, *, use_index: bool) -> list[Any]:
    """Owner/address substring conditions on ``columns`` (a table's or a subquery's ``.c``).

    With ``use_index`` they add "all of the needle's trigrams are in the column's", which the
    GIN trigram index answers; without, only the substring test (for rows already at hand).
    """
    conditions: list[Any] = []
    for column, needle, trigrams_column in (
        (columns.owner_name, filters.owner, "owner_trigrams"),
        (columns.situs_address, filters.address, "address_trigrams"),
    ):
        if needle is None:
            continue
        if use_index:
            needle_trigrams = literal(covering_trigrams(needle), ARRAY(Text))
            contains_all = columns[trigrams_column].op("@>", return_type=Boolean)
            conditions.append(contains_all(needle_trigrams))
        conditions.append(contains_text(column, needle))
    return conditions


def has_text_filters(filters: SearchFilters) -> bool:
    return filters.owner is not None or filters.address is not None


def filter_conditions(filters: SearchFilters) -> list[ColumnElement[bool]]:
    """Every filter but the owner/address substrings (see ``text_conditions``)."""
    conditions: list[ColumnElement[bool]] = []
    if filters.state is not None:
        conditions.append(Parcel.state == filters.state)
    if filters.county is not None:
        conditions.append(Parcel.county == filters.county)
    conditions += _range_conditions(Parcel.total_due, filters.total_due_min, filters.total_due_max)
    conditions += _range_conditions(
        Parcel.assessed_value, filters.assessed_value_min, filters.assessed_value_max
    )
    if filters.property_type is not None:
        conditions.append(func.lower(Parcel.property_type) == filters.property_type)
    if filters.is_delinquent is not None:
        conditions.append(Parcel.is_delinquent.is_(filters.is_delinquent))
    if filters.updated_since is not None:
        conditions.append(Parcel.updated_at >= filters.updated_since)
    return conditions


def _range_conditions(
    column: Any, low: Decimal | None, high: Decimal | None
) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if low is not None:
        conditions.append(column >= low)
    if high is not None:
        conditions.append(column <= high)
    return conditions
