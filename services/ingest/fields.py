"""Which scraped field names feed which typed parcel column, and how each is parsed.

Scrapers name fields freely (``Owner Name``, ``owner``, ``just_value``); keys are compared
after lower-casing and turning spaces, dashes and dots into underscores. When several
aliases of one column are present, the first alias listed below wins. A value that does not
parse leaves its column empty and is reported, so the caller can count it; the raw ``data``
always keeps it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
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

logger = logging.getLogger(__name__)
Parser = Callable[[object], Any]
_MAX_ACREAGE = Decimal("99999999.9999")  # Numeric(12, 4)
_ACREAGE_QUANTUM = Decimal("0.0001")


def _parse_acreage(value: object) -> Decimal | None:
    number = parse_number(value)
    if number is None or not 0 <= number <= _MAX_ACREAGE:
        return None
    return number.quantize(_ACREAGE_QUANTUM)


def _parse_tax_year(value: object) -> int | None:
    return parse_int(value, low=MIN_YEAR, high=MAX_YEAR)


def _parse_living_area(value: object) -> int | None:
    return parse_int(value, low=0, high=2_000_000_000)


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
    # The fleet's qpublic/beacon parsers send total_due_amount, bid4assets tax_amount_due.
    "total_due": (
        parse_money,
        ("total_due", "total_due_amount", "amount_due", "tax_amount_due", "taxes_due",
         "tax_due", "balance_due"),
    ),
    "tax_year": (_parse_tax_year, ("tax_year", "taxyear")),
    "is_delinquent": (
        _parse_delinquent, ("delinquent", "is_delinquent", "delinquent_flag", "has_delinquency")
    ),
    "delinquent_amount": (
        parse_money, ("delinquent_amount", "delinquent_taxes", "amount_delinquent")
    ),
    "last_sale_date": (parse_date, ("last_sale_date", "sale_date")),
    "last_sale_price": (parse_money, ("last_sale_price", "sale_price", "last_sale_amount")),
    "living_area_sqft": (
        _parse_living_area,
        ("living_area_sqft", "living_area", "heated_area", "building_sqft", "sqft",
         "square_feet"),
    ),
    "acreage": (_parse_acreage, ("acreage", "acres", "lot_acres", "land_acres")),
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
_LONGEST_BLANK = max(map(len, _BLANK))
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


def _is_link(text: str) -> bool:
    return text[:8].lower().startswith(("http://", "https://"))


def _is_blank(value: object) -> bool:
    if value is None:
        return True
    if not isinstance(value, str):
        return False
    text = value.strip()
    return len(text) <= _LONGEST_BLANK and text.lower() in _BLANK


@dataclass
class TypedValues:
    columns: dict[str, Any]
    unparsed: list[str] = field(default_factory=list)  # typed columns whose value did not parse


# For one set of data keys (in order): per typed column present, its column index, parser
# and the keys naming it in order of preference (on equal rank, the earlier key).
_Plan = tuple[tuple[int, Parser, tuple[str, ...]], ...]
_plans: dict[tuple[str, ...], _Plan] = {}
_IS_DELINQUENT = TYPED_COLUMNS.index("is_delinquent")
_DELINQUENT_AMOUNT = TYPED_COLUMNS.index("delinquent_amount")


def _plan_for(keys: tuple[str, ...]) -> _Plan:
    """Which keys feed which column; scrapers send the same keys in every row, so cached."""
    plan = _plans.get(keys)
    if plan is None:
        found: dict[str, list[tuple[int, int, str]]] = {}
        for position, key in enumerate(keys):
            hit = _column_of(key)
            if hit is not None:
                found.setdefault(hit[0], []).append((hit[1], position, key))
        plan = tuple(
            (
                TYPED_COLUMNS.index(column),
                TYPED_FIELDS[column][0],
                tuple(k for *_, k in sorted(hits)),
            )
            for column, hits in found.items()
        )
        if len(_plans) < 1_000:
            _plans[keys] = plan
    return plan


def extract_typed_row(data: Mapping[str, object]) -> tuple[list[Any], list[str]]:
    """Typed values in ``TYPED_COLUMNS`` order (``None`` if absent), and the columns whose
    value did not parse."""
    row: list[Any] = [None] * len(TYPED_COLUMNS)
    unparsed: list[str] = []
    for index, parse, keys in _plan_for(tuple(data)):
        for key in keys:
            value = data[key]
            if type(value) is str:  # _is_blank inlined: this runs for every value
                text = value.strip()
                if len(text) <= _LONGEST_BLANK and text.lower() in _BLANK:
                    continue
                if text and text[0] in "hH" and _is_link(text):
                    continue  # a link (qpublic's site_address) is no column's value
            elif _is_blank(value):
                continue
            try:
                parsed = parse(value)
            except Exception:  # a parser bug must cost one value, never an item
                logger.exception("parser for %s raised on a value", TYPED_COLUMNS[index])
                parsed = None
            if parsed is None:
                unparsed.append(TYPED_COLUMNS[index])
            else:
                row[index] = parsed
            break
    _settle_delinquency(row)
    return row, unparsed


def extract_typed_values(data: Mapping[str, object]) -> TypedValues:
    """Typed column values found in ``data``; every column is present (``None`` if absent)."""
    row, unparsed = extract_typed_row(data)
    return TypedValues(columns=dict(zip(TYPED_COLUMNS, row, strict=True)), unparsed=unparsed)


def _settle_delinquency(row: list[Any]) -> None:
    """A ``delinquent`` field may hold an amount; an amount above zero means delinquent."""
    flag = row[_IS_DELINQUENT]
    if isinstance(flag, Decimal):
        if row[_DELINQUENT_AMOUNT] is None:
            row[_DELINQUENT_AMOUNT] = flag
        row[_IS_DELINQUENT] = flag > 0
    elif flag is None and row[_DELINQUENT_AMOUNT] is not None:
        row[_IS_DELINQUENT] = row[_DELINQUENT_AMOUNT] > 0
