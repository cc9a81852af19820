"""One parcel by any spelling of its identity."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.models import Parcel
from services.errors import InvalidInput, NotFound
from services.parcel_identity import normalize_county, normalize_state, parcel_key
from services.public.search_filters import invalid_parameter


def find_parcel(session: Session, state: str, county: str, parcel_id: str) -> Parcel:
    """``FL/Dixie/01-08-13-0000-3634-1100`` and ``fl/dixie/010813000036341100`` are one parcel."""
    identity = _identity(state, county, parcel_id)
    parcel = session.scalar(
        select(Parcel).where(
            Parcel.state == identity[0],
            Parcel.county == identity[1],
            Parcel.parcel_key == identity[2],
        )
    )
    if parcel is None:
        state_code, county_slug, key = identity
        raise NotFound(
            f"no parcel {parcel_id!r} (key {key}) in {county_slug}, {state_code}",
            details={"state": state_code, "county": county_slug, "parcel_key": key},
        )
    return parcel


def _identity(state: str, county: str, parcel_id: str) -> tuple[str, str, str]:
    parts = []
    for name, value, normalize in (
        ("state", state, normalize_state),
        ("county", county, normalize_county),
        ("parcel_id", parcel_id, parcel_key),
    ):
        try:
            parts.append(normalize(value))
        except InvalidInput as exc:
            raise invalid_parameter(name, exc.message) from exc
    return parts[0], parts[1], parts[2]
