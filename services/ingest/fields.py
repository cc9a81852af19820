"""Which scraped field names feed which typed parcel column, and how each is parsed.

Scrapers name fields freely (``Owner Name``, ``owner``, ``just_value``); keys are compared
after lower-casing and turning spaces, dashes and dots into underscores. When several
aliases of one column are present, the first alias listed below wins. A value that does not
parse leaves its column empty and is reported, so the caller can count it; the raw ``data``
always keeps it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from functools import partial
from typing import Any

from services.ingest.values import (
    MAX_YEAR,
    MIN_YEAR,
    parse_bool,
    parse_date,
    parse_int,
    parse_money,
    parse_number,
    parse_text,
    parse_zip,
)

Parser = Callable[[object], Any]
_MAX_ACREAGE = Decimal("99999999.9999")  # Numeric(12, 4)


def _parse_acreage(value: object) -> Decimal | None:
    number = parse_number(value)
    if number is None or not 0 <= number <= _MAX_ACREAGE:
        return None
    return number.quantize(Decimal("0.0001"))


def _parse_delinquent(value: object) -> bool | Decimal | None:
    """A flag (``"Y"``) or an amount (``"$1,204.10"``: delinquent when above zero)."""
    flag = parse_bool(value)
    return flag if flag is not None else parse_money(value)


# column -> (parser, aliases in order of preference)
TYPED_FIELDS: dict[str, tuple[Parser, tuple[str, ...]]] = {
    "owner_name": (parse_text, ("owner_name", "owner", "owners", "owner1", "owner_1")),
    "situs_address": (
        parse_text,
        ("situs_address", "situs", "property_address", "site_address", "location_address",
         "physical_address", "address"),
    ),
    "city": (parse_text, ("city", "situs_city", "property_city")),
    "zip": (parse_zip, ("zip", "zip_code", "zipcode", "situs_zip", "postal_code")),
    "property_type": (
        parse_text,
        ("property_type", "use_code", "property_use", "land_use", "property_class", "dor_code"),
    ),
    "assessed_value": (parse_money, ("assessed_value", "assessed", "assessment")),
    "market_value": (
        parse_money, ("market_value", "just_value", "just_market_value", "appraised_value")
    ),
    "land_value": (parse_money, ("land_value",)),
    "improvement_value": (
        parse_money,
        ("improvement_value", "building_value", "improvements_value", "bldg_value"),
    ),
    "total_due": (
        parse_money, ("total_due", "amount_due", "taxes_due", "tax_due", "balance_due")
    ),
    "tax_year": (partial(parse_int, low=MIN_YEAR, high=MAX_YEAR), ("tax_year", "taxyear")),
    "is_delinquent": (_parse_delinquent, ("delinquent", "is_delinquent", "delinquent_flag")),
    "delinquent_amount": (
        parse_money, ("delinquent_amount", "delinquent_taxes", "amount_delinquent")
    ),
    "last_sale_date": (parse_date, ("last_sale_date", "sale_date")),
    "last_sale_price": (parse_money, ("last_sale_price", "sale_price", "last_sale_amount")),
    "living_area_sqft": (
        partial(parse_int, low=0, high=2_000_000_000),
        ("living_area_sqft", "living_area", "heated_area", "building_sqft", "sqft",
         "square_feet"),
    ),
    "acreage": (_parse_acreage, ("acreage", "acres", "lot_acres")),
}  # fmt: skip
TYPED_COLUMNS = tuple(TYPED_FIELDS)

# normalised key -> (column, preference); lower preference wins.
_ALIASES: dict[str, tuple[str, int]] = {
    alias: (column, rank)
    for column, (_, aliases) in TYPED_FIELDS.items()
    for rank, alias in enumerate(aliases)
}
_KEY_SEPARATORS = re.compile(r"[\s.\-/]+")
_BLANK = frozenset({"", "n/a", "na", "-", "--", "null"})
_normalised_keys: dict[str, str] = {}


def normalize_field_name(key: str) -> str:
    """``"Owner Name"`` → ``owner_name``; cached, since the same keys recur in every row."""
    cached = _normalised_keys.get(key)
    if cached is None:
        cached = _KEY_SEPARATORS.sub("_", key.strip().lower()).strip("_")
        if len(_normalised_keys) < 10_000:
            _normalised_keys[key] = cached
    return cached


_columns_by_key: dict[str, tuple[str, int] | None] = {}


def _column_of(key: str) -> tuple[str, int] | None:
    """(column, preference) of a raw data key, or None; cached by the raw key itself."""
    try:
        return _columns_by_key[key]
    except KeyError:
        hit = _ALIASES.get(normalize_field_name(key))
        if len(_columns_by_key) < 10_000:
            _columns_by_key[key] = hit
        return hit


def _is_blank(value: object) -> bool:
    return value is None or (isinstance(value, str) and value.strip().lower() in _BLANK)


@dataclass
class TypedValues:
    columns: dict[str, Any]
    unparsed: list[str] = field(default_factory=list)  # typed columns whose value did not parse


def extract_typed_values(data: Mapping[str, object]) -> TypedValues:
    """Typed column values found in ``data``; every column is present (``None`` if absent)."""
    chosen: dict[str, tuple[int, str, object]] = {}
    for key, value in data.items():
        hit = _column_of(key)
        if hit is None or _is_blank(value):
            continue
        column, rank = hit
        current = chosen.get(column)
        if current is None or rank < current[0]:
            chosen[column] = (rank, key, value)

    columns: dict[str, Any] = dict.fromkeys(TYPED_COLUMNS)
    unparsed: list[str] = []
    for column, (_, _key, value) in chosen.items():
        parsed = TYPED_FIELDS[column][0](value)
        if parsed is None:
            unparsed.append(column)
        else:
            columns[column] = parsed
    _settle_delinquency(columns)
    return TypedValues(columns=columns, unparsed=unparsed)


def _settle_delinquency(columns: dict[str, Any]) -> None:
    """A ``delinquent`` field may hold an amount; an amount above zero means delinquent."""
    flag = columns["is_delinquent"]
    if isinstance(flag, Decimal):
        if columns["delinquent_amount"] is None:
            columns["delinquent_amount"] = flag
        columns["is_delinquent"] = flag > 0
    elif flag is None and columns["delinquent_amount"] is not None:
        columns["is_delinquent"] = columns["delinquent_amount"] > 0
