"""Parsing of scraped strings into typed values.

Every parser returns ``None`` when the value does not parse; callers keep the raw value in
``data`` and count it. Nothing here raises on bad input.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from decimal import Decimal, InvalidOperation

# Numeric(14, 2): anything at or beyond this would fail the whole batch statement.
MAX_MONEY = Decimal("999999999999.99")
_CENT = Decimal("0.01")
MIN_YEAR, MAX_YEAR = 1800, 2100

# Money is a plain or properly grouped amount once "$", whitespace and "USD" are gone: ASCII
# digits only, no exponent, no underscores ("1.234,56", "1,23", "1e3" and "1_000" are not
# amounts; Decimal alone would accept some of them, or strip commas into another number).
_MONEY_NOISE = re.compile(r"[\s$]|usd", re.IGNORECASE)
_AMOUNT = re.compile(r"(?:[0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)(?:\.[0-9]+)?|\.[0-9]+")
_MAX_AMOUNT_CHARS = 64  # far beyond MAX_MONEY; keeps the work per value bounded
# No typed value is longer; a longer one stays in ``data`` only. It also keeps every parser's
# work per value bounded (and under Python's 4,300-digit limit on int(str)).
MAX_NUMBER_CHARS = 64
# Names and addresses longer than this are not names or addresses: kept in ``data`` only.
MAX_TEXT_CHARS = 1000
_NUMBER_PREFIX = re.compile(r"[-+]?(?:[0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)?(?:\.[0-9]+)?")
# What may not follow a leading number: more of a number ("2,0000", "1.2.3", "1e5").
_NUMBER_CONTINUES = re.compile(r"[0-9_]|[,.][0-9]|[eE][-+]?[0-9]")
_US_DATE = re.compile(r"^(\d{1,2})[/-](\d{1,2})[/-](\d{4}|\d{2})$")
_ISO_DATE = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})(?:[T ].*)?$")
_MONTH_NAME_DATE = re.compile(r"^([A-Za-z]{3,9})\.? (\d{1,2}),? (\d{4})$")
_ZIP = re.compile(r"^(\d{5})(?:-?(\d{4}))?$")
_MONTHS = {
    name: number
    for number, names in enumerate(
        [
            ("jan", "january"), ("feb", "february"), ("mar", "march"), ("apr", "april"),
            ("may",), ("jun", "june"), ("jul", "july"), ("aug", "august"),
            ("sep", "sept", "september"), ("oct", "october"), ("nov", "november"),
            ("dec", "december"),
        ],
        start=1,
    )
    for name in names
}  # fmt: skip
_TRUE_WORDS = frozenset({"true", "t", "yes", "y", "1", "x", "delinquent", "unpaid", "due"})
_FALSE_WORDS = frozenset({"false", "f", "no", "n", "0", "current", "paid", "none"})


def parse_money(value: object) -> Decimal | None:
    """``"$1,234.56"``, ``"(1,234.56)"`` (negative), ``"-$5"``, ``"1234"``, ``1234.5``."""
    if type(value) is str:  # the common case first: scrapers send strings
        return _parse_money_text(value)
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return _bounded_money(_decimal_of_number(value))
    if isinstance(value, str):  # a str subclass
        return _parse_money_text(value)
    return None


def _parse_money_text(value: str) -> Decimal | None:
    text = value.strip()
    if len(text) > _MAX_AMOUNT_CHARS:
        return None
    in_parentheses = text[:1] == "(" and text[-1:] == ")"  # accounting negative
    if in_parentheses:
        text = text[1:-1]
    # str.replace is several times faster than a regex here, and this runs per value.
    text = text.replace("$", "").replace(" ", "")
    is_negative = in_parentheses
    if not _AMOUNT.fullmatch(text):
        text = _MONEY_NOISE.sub("", text)
        if text[:1] == "-" and not in_parentheses:  # no sign inside parentheses
            is_negative, text = True, text[1:]
        if not _AMOUNT.fullmatch(text):
            return None
    amount = Decimal(text.replace(",", ""))  # cannot fail: a plain decimal by now
    if amount > MAX_MONEY:
        return None
    return (-amount if is_negative else amount).quantize(_CENT)


def _decimal_of_number(value: int | float) -> Decimal | None:
    """A JSON number as a Decimal; ``None`` for one too long to be a value (a 5,000-digit int)."""
    if isinstance(value, int) and not -(10**MAX_NUMBER_CHARS) < value < 10**MAX_NUMBER_CHARS:
        return None
    return Decimal(str(value))


def _bounded_money(amount: Decimal | None) -> Decimal | None:
    if amount is None or not amount.is_finite() or abs(amount) > MAX_MONEY:
        return None
    return amount.quantize(_CENT)


def parse_number(value: object) -> Decimal | None:
    """The leading number of ``"1,850 sqft"``, ``"0.52 ac"``, ``"2,000"``, ``1850``."""
    if isinstance(value, str):
        text = value.strip()
        if len(text) > MAX_NUMBER_CHARS:
            return None
        if text.isascii() and text.isdigit():  # "2025": no regex needed
            return Decimal(text)
        return _leading_number(text)
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = _decimal_of_number(value)
        return number if number is not None and number.is_finite() else None
    return None


def _leading_number(text: str) -> Decimal | None:
    match = _NUMBER_PREFIX.match(text)
    digits = match.group(0).replace(",", "") if match else ""
    if not digits or digits in ("-", "+", "."):
        return None
    if _NUMBER_CONTINUES.match(text, match.end() if match else 0):
        return None  # the number goes on in a form we do not read
    try:
        return Decimal(digits)
    except InvalidOperation:
        return None


def parse_int(value: object, *, low: int, high: int) -> int | None:
    """A whole number within ``[low, high]`` (``"2,024"`` → 2024; ``"2024.0"`` → 2024)."""
    if type(value) is str and value.isdigit() and value.isascii():  # "2025": the common case
        if len(value) > MAX_NUMBER_CHARS:
            return None
        whole = int(value)
        return whole if low <= whole <= high else None
    number = parse_number(value)
    if number is None or number != number.to_integral_value():
        return None
    whole = int(number)
    return whole if low <= whole <= high else None


def parse_date(value: object) -> date | None:
    """``"12/31/2024"``, ``"12-31-24"``, ``"2024-12-31"`` (or ISO datetime), ``"Dec 31, 2024"``."""
    if not isinstance(value, str) or len(value) > MAX_NUMBER_CHARS:
        return None
    text = value.strip()
    if match := _US_DATE.match(text):
        month, day, year = int(match[1]), int(match[2]), int(match[3])
        if len(match[3]) == 2:
            year += 2000 if year < 70 else 1900
    elif match := _ISO_DATE.match(text):
        year, month, day = int(match[1]), int(match[2]), int(match[3])
    elif match := _MONTH_NAME_DATE.match(text):
        month_number = _MONTHS.get(match[1].lower())
        if month_number is None:
            return None
        month, day, year = month_number, int(match[2]), int(match[3])
    else:
        return None
    if not MIN_YEAR <= year <= MAX_YEAR:
        return None
    try:
        return date(year, month, day)
    except ValueError:
        return None


def parse_bool(value: object) -> bool | None:
    """``yes/no``, ``y/n``, ``true/false``, ``1/0``, ``delinquent/current``, ``paid/unpaid``."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if not isinstance(value, str):
        return None
    word = value.strip().lower()
    if word in _TRUE_WORDS:
        return True
    if word in _FALSE_WORDS:
        return False
    return None


def parse_zip(value: object) -> str | None:
    """``"32680"``, ``"32680-1234"``, ``"326801234"`` (→ ``"32680-1234"``), ``32680``."""
    if isinstance(value, int) and not isinstance(value, bool):
        if not 0 <= value <= 999_999_999:
            return None
        value = f"{value:05d}"
    if not isinstance(value, str) or len(value) > MAX_NUMBER_CHARS:
        return None
    match = _ZIP.match(value.strip())
    if match is None:
        return None
    return f"{match[1]}-{match[2]}" if match[2] else match[1]


def parse_text(value: object) -> str | None:
    """A non-empty string with its whitespace collapsed; numbers become their text.

    Longer than ``MAX_TEXT_CHARS``: ``None`` (the value stays in ``data``, reported as unparsed).
    """
    if isinstance(value, str):
        if len(value) > MAX_TEXT_CHARS * 4:  # before the copy: whitespace could collapse it
            return None
        text = " ".join(value.split())
        return text if 0 < len(text) <= MAX_TEXT_CHARS else None
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = _decimal_of_number(value)
        return None if number is None else str(value)
    return None


def parse_timestamp(value: object) -> datetime | None:
    """An ISO 8601 timestamp (``Z`` accepted)."""
    if not isinstance(value, str) or len(value) > MAX_NUMBER_CHARS:
        return None
    try:
        return datetime.fromisoformat(value.strip())
    except ValueError:
        return None
