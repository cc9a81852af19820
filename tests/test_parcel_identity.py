"""Parcel identity normalisation, checked on real ids and counties from shared/data."""

from __future__ import annotations

import csv

import pytest

from services.errors import InvalidInput
from services.parcel_identity import normalize_county, normalize_state, parcel_key
from tests.shared_data import COUNTY_SOURCES, DIXIE_PARCEL_IDS


def test_dashed_and_compact_parcel_ids_have_the_same_key() -> None:
    assert parcel_key("1-32-4N-4W-0000-00322-0300") == parcel_key("1324N4W0000003220300")
    assert parcel_key(" 13.24n 4w-0000 ") == "1324N4W0000"


def test_every_real_dixie_id_keeps_its_digits_and_is_unique() -> None:
    ids = DIXIE_PARCEL_IDS.read_text().split()
    keys = {parcel_key(parcel_id) for parcel_id in ids}
    assert len(ids) > 5000
    assert len(keys) == len(set(ids))
    assert all(key.isalnum() and key == key.upper() for key in keys)


@pytest.mark.parametrize("spelling", ["St. Johns", "st_johns", "stjohns", "Saint Johns County"])
def test_county_spellings_collapse_to_one_slug(spelling: str) -> None:
    assert normalize_county(spelling) == "stjohns"


def test_states_from_the_county_source_file_normalise_to_codes() -> None:
    with COUNTY_SOURCES.open(newline="") as handle:
        rows = [row for row in csv.reader(handle) if row and row[0].strip()]
    states = {normalize_state(row[0]) for row in rows[2:] if row[0].strip() not in ('"', "state")}
    assert states >= {"AZ", "FL"}
    assert states <= {"AZ", "FL", "NJ", "NM"}


@pytest.mark.parametrize("bad", ["", "---", "  "])
def test_ids_without_letters_or_digits_are_rejected(bad: str) -> None:
    with pytest.raises(InvalidInput):
        parcel_key(bad)


def test_unknown_state_names_the_value() -> None:
    with pytest.raises(InvalidInput, match="Atlantis"):
        normalize_state("Atlantis")
