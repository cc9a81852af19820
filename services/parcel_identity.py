"""Parcel identity: (state code, county slug, parcel key).

``1-32-4N-4W-0000-00322-0300`` and ``1324N4W0000003220300`` are the same parcel, and
``St. Johns``, ``st_johns`` and ``stjohns`` are the same county.
"""

from __future__ import annotations

import re

from services.errors import InvalidInput

_STATE_NAMES = {
    "alabama": "AL", "alaska": "AK", "arizona": "AZ", "arkansas": "AR", "california": "CA",
    "colorado": "CO", "connecticut": "CT", "delaware": "DE", "district of columbia": "DC",
    "florida": "FL", "georgia": "GA", "hawaii": "HI", "idaho": "ID", "illinois": "IL",
    "indiana": "IN", "iowa": "IA", "kansas": "KS", "kentucky": "KY", "louisiana": "LA",
    "maine": "ME", "maryland": "MD", "massachusetts": "MA", "michigan": "MI", "minnesota": "MN",
    "mississippi": "MS", "missouri": "MO", "montana": "MT", "nebraska": "NE", "nevada": "NV",
    "new hampshire": "NH", "new jersey": "NJ", "new mexico": "NM", "new york": "NY",
    "north carolina": "NC", "north dakota": "ND", "ohio": "OH", "oklahoma": "OK", "oregon": "OR",
    "pennsylvania": "PA", "rhode island": "RI", "south carolina": "SC", "south dakota": "SD",
    "tennessee": "TN", "texas": "TX", "utah": "UT", "vermont": "VT", "virginia": "VA",
    "washington": "WA", "west virginia": "WV", "wisconsin": "WI", "wyoming": "WY",
    "puerto rico": "PR", "guam": "GU", "virgin islands": "VI",
}  # fmt: skip
STATE_CODES = frozenset(_STATE_NAMES.values())
_NOT_ALNUM = re.compile(r"[^0-9a-z]")
_COUNTY_WORDS = re.compile(r"\b(county|parish|borough)\b")


def normalize_state(state: str) -> str:
    """``FL``, ``fl``, ``fl_``, ``Florida`` and ``new jersey `` become two-letter codes."""
    cleaned = " ".join(state.replace("_", " ").split()).lower()
    if cleaned.upper() in STATE_CODES:
        return cleaned.upper()
    code = _STATE_NAMES.get(cleaned)
    if code is None:
        raise InvalidInput(f"unknown state {state!r}: use a two-letter code such as FL")
    return code


def normalize_county(county: str) -> str:
    """A slug of letters and digits: ``St. Johns County`` → ``stjohns``; ``saint`` → ``st``."""
    lowered = _COUNTY_WORDS.sub(" ", county.lower().replace("_", " "))
    words = lowered.replace(".", " ").split()
    if words and words[0] == "saint":
        words[0] = "st"
    slug = _NOT_ALNUM.sub("", "".join(words))
    if not slug:
        raise InvalidInput(f"county {county!r} has no letters or digits")
    if len(slug) > 64:
        raise InvalidInput(f"county {county!r} is longer than 64 characters")
    return slug


def parcel_key(parcel_id: str) -> str:
    """The parcel id without case, spaces, dashes, dots or other punctuation."""
    key = _NOT_ALNUM.sub("", parcel_id.lower()).upper()
    if not key:
        raise InvalidInput(f"parcel id {parcel_id!r} has no letters or digits")
    return key
