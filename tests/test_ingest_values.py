"""Typed parsing of scraped strings, and the field-name mapping onto parcel columns."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from services.ingest.fields import extract_typed_values, normalize_field_name
from services.ingest.values import (
    parse_bool,
    parse_date,
    parse_int,
    parse_money,
    parse_number,
    parse_zip,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("$1,234.56", Decimal("1234.56")),
        ("(1,234.56)", Decimal("-1234.56")),
        ("1234", Decimal("1234.00")),
        ("-$5", Decimal("-5.00")),
        ("$ 12,000", Decimal("12000.00")),
        ("USD 7.5", Decimal("7.50")),
        (1234.5, Decimal("1234.50")),
        (".99", Decimal("0.99")),
    ],
)
def test_money_in_scraped_formats_parses(raw: object, expected: Decimal) -> None:
    assert parse_money(raw) == expected


@pytest.mark.parametrize("raw", ["call office", "$", "N/A", "1.2.3", True, None, "$1e999", "1e15"])
def test_money_that_is_not_money_does_not_parse(raw: object) -> None:
    assert parse_money(raw) is None


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("12/31/2024", date(2024, 12, 31)),
        ("2024-12-31", date(2024, 12, 31)),
        ("2024-12-31T00:00:00", date(2024, 12, 31)),
        ("1/5/24", date(2024, 1, 5)),
        ("12-31-1999", date(1999, 12, 31)),
        ("Dec 31, 2024", date(2024, 12, 31)),
        ("September 3 2021", date(2021, 9, 3)),
    ],
)
def test_dates_in_scraped_formats_parse(raw: str, expected: date) -> None:
    assert parse_date(raw) == expected


@pytest.mark.parametrize("raw", ["13/45/2024", "2024-02-30", "yesterday", "12/31/1492", ""])
def test_impossible_dates_do_not_parse(raw: str) -> None:
    assert parse_date(raw) is None


@pytest.mark.parametrize(
    "raw",
    ["1.234,56", "1,23", "12,34.56", "(-5)", "1e3", "1E3", "1_000", "\uff11\uff12\uff13", "--5",
     "$1,2345", "1,234,56", "-(5)"],
)  # fmt: skip
def test_money_that_is_not_a_plain_or_grouped_amount_does_not_parse(raw: str) -> None:
    assert parse_money(raw) is None


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("$1,234,567.89", Decimal("1234567.89")), ("($5)", Decimal("-5.00")),
     ("7 USD", Decimal("7.00")), ("$-5", Decimal("-5.00")), ("12345.5", Decimal("12345.50"))],
)  # fmt: skip
def test_plain_and_grouped_amounts_parse(raw: str, expected: Decimal) -> None:
    assert parse_money(raw) == expected


@pytest.mark.parametrize(
    "raw", ["2,0000", "1e5", "1.2.3", "1_000 sqft", "\uff11\uff12 ac", "2,00 ac"]
)
def test_numbers_that_go_on_in_another_form_do_not_parse(raw: str) -> None:
    assert parse_number(raw) is None


def test_a_number_followed_by_punctuation_or_words_still_parses() -> None:
    assert parse_number("1,850, 2 baths") == Decimal("1850")
    assert parse_number("1850sqft") == Decimal("1850")
    assert parse_number("12.5%") == Decimal("12.5")


def test_numbers_with_units_and_separators_parse() -> None:
    assert parse_number("1,850 sqft") == Decimal("1850")
    assert parse_number("0.52 AC") == Decimal("0.52")
    assert parse_int("2,024", low=1800, high=2100) == 2024
    assert parse_int("1850.5", low=0, high=10_000) is None
    assert parse_int("3000", low=1800, high=2100) is None
    assert parse_number("sqft") is None


def test_flags_and_zip_codes_parse() -> None:
    assert [parse_bool(v) for v in ("Y", "no", "Delinquent", "PAID", 1, "maybe")] == [
        True, False, True, False, True, None,
    ]  # fmt: skip
    assert [parse_zip(v) for v in ("32680", "32680-1234", "326801234", 2628, "ABCDE")] == [
        "32680", "32680-1234", "32680-1234", "02628", None,
    ]  # fmt: skip


def test_common_field_names_map_onto_typed_columns() -> None:
    data = {
        "Owner Name": "  SMITH   JOHN ",
        "Situs": "123 MAIN ST",
        "City": "CROSS CITY",
        "zip-code": "32628",
        "Use Code": "0100",
        "Assessed Value": "$50,000",
        "Just Value": "$60,000.00",
        "Land Value": "10,000",
        "Building Value": "$40,000",
        "Amount Due": "$1,234.56",
        "Tax Year": "2025",
        "Delinquent": "Y",
        "Sale Date": "06/15/2019",
        "Sale Price": "$95,000",
        "Heated Area": "1,850 sqft",
        "Acres": "0.52 AC",
        "Legal": "LOT 1",
    }

    typed = extract_typed_values(data)

    assert typed.unparsed == []
    assert typed.columns == {
        "owner_name": "SMITH JOHN", "situs_address": "123 MAIN ST", "city": "CROSS CITY",
        "zip": "32628", "property_type": "0100", "assessed_value": Decimal("50000.00"),
        "market_value": Decimal("60000.00"), "land_value": Decimal("10000.00"),
        "improvement_value": Decimal("40000.00"), "total_due": Decimal("1234.56"),
        "tax_year": 2025, "is_delinquent": True, "delinquent_amount": None,
        "last_sale_date": date(2019, 6, 15), "last_sale_price": Decimal("95000.00"),
        "living_area_sqft": 1850, "acreage": Decimal("0.5200"),
    }  # fmt: skip


def test_the_preferred_alias_wins_and_blanks_are_absent() -> None:
    typed = extract_typed_values({"address": "OTHER", "situs_address": "MAIN", "owner": "N/A"})

    assert typed.columns["situs_address"] == "MAIN"
    assert typed.columns["owner_name"] is None
    assert typed.unparsed == []


def test_a_delinquent_amount_sets_the_flag() -> None:
    from_amount = extract_typed_values({"delinquent": "$1,204.10"}).columns
    from_zero = extract_typed_values({"delinquent_amount": "$0.00"}).columns

    assert (from_amount["is_delinquent"], from_amount["delinquent_amount"]) == (
        True, Decimal("1204.10"),
    )  # fmt: skip
    assert (from_zero["is_delinquent"], from_zero["delinquent_amount"]) == (False, Decimal("0.00"))


def test_values_that_do_not_parse_are_reported_not_raised() -> None:
    typed = extract_typed_values(
        {"total_due": "see office", "tax_year": "FY25", "sale_date": "soon", "zip": [1]}
    )

    assert sorted(typed.unparsed) == ["last_sale_date", "tax_year", "total_due", "zip"]
    assert all(typed.columns[c] is None for c in typed.unparsed)


def test_field_names_are_compared_without_case_or_punctuation() -> None:
    assert normalize_field_name(" Owner-Name ") == "owner_name"
    assert normalize_field_name("Just.Value") == "just_value"
