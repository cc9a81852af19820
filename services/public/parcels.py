"""One parcel by any spelling of its identity."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.models import Parcel
from services.errors import Conflict, InvalidInput, NotFound
from services.parcel_identity import normalize_county, normalize_state, parcel_key
from services.public.search_filters import invalid_parameter

_TYPO_TAIL = 3  # suggestions may differ from the asked id in this many trailing characters
MAX_CANDIDATES = 20  # an ambiguous id lists at most this many parcels


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
        suggestions = similar_parcel_ids(session, state_code, county_slug, key)
        hint = f"; did you mean {', '.join(suggestions)}?" if suggestions else ""
        raise NotFound(
            f"no parcel {parcel_id!r} (key {key}) in {county_slug}, {state_code}{hint}",
            details={
                "state": state_code,
                "county": county_slug,
                "parcel_key": key,
                "did_you_mean": suggestions,
            },
        )
    return parcel


def find_parcel_by_id(
    session: Session, parcel_id: str, *, state: str | None = None, county: str | None = None
) -> Parcel:
    """The one parcel whose id (any spelling) is ``parcel_id``, within ``state``/``county``
    when given. Ids repeat across counties: more than one match is a conflict listing them."""
    key = _normalized("parcel_id", parcel_id, parcel_key)
    scope = [Parcel.parcel_key == key]
    if state is not None:
        scope.append(Parcel.state == _normalized("state", state, normalize_state))
    if county is not None:
        scope.append(Parcel.county == _normalized("county", county, normalize_county))
    matches = list(
        session.scalars(
            select(Parcel)
            .where(*scope)
            .order_by(Parcel.state, Parcel.county)
            .limit(MAX_CANDIDATES + 1)
        )
    )
    if len(matches) == 1:
        return matches[0]
    if not matches:
        if state is not None and county is not None:
            return find_parcel(session, state, county, parcel_id)  # 404 with suggestions
        raise NotFound(
            f"no parcel {parcel_id!r} (key {key})", details={"parcel_key": key, "candidates": []}
        )
    candidates = [
        {"state": p.state, "county": p.county, "parcel_id": p.parcel_id}
        for p in matches[:MAX_CANDIDATES]
    ]
    places = ", ".join(f"{c['county']}, {c['state']}" for c in candidates)
    raise Conflict(
        f"parcel {parcel_id!r} exists in more than one county ({places}); "
        "name one with the state and county query parameters",
        details={"parcel_key": key, "candidates": candidates},
    )


def similar_parcel_ids(
    session: Session, state: str, county: str, key: str, *, count: int = 3
) -> list[str]:
    """Ids of the county that differ from ``key`` only in its last few characters.

    The neighbours of the key in the identity index, on both sides: two index probes, so a
    mistyped last digit or a missing suffix still leads somewhere.
    """
    scope = (Parcel.state == state, Parcel.county == county)
    columns = (Parcel.parcel_id, Parcel.parcel_key)
    after = select(*columns).where(*scope, Parcel.parcel_key > key)
    before = select(*columns).where(*scope, Parcel.parcel_key < key)
    rows = [
        *session.execute(after.order_by(Parcel.parcel_key.asc()).limit(count)),
        *session.execute(before.order_by(Parcel.parcel_key.desc()).limit(count)),
    ]
    needed = max(len(key) - _TYPO_TAIL, 1)
    close = [row for row in rows if _common_prefix(row.parcel_key, key) >= needed]
    close.sort(key=lambda row: (-_common_prefix(row.parcel_key, key), row.parcel_key))
    return [row.parcel_id for row in close[:count]]


def _common_prefix(first: str, second: str) -> int:
    length = 0
    for a, b in zip(first, second, strict=False):
        if a != b:
            break
        length += 1
    return length


def _identity(state: str, county: str, parcel_id: str) -> tuple[str, str, str]:
    return (
        _normalized("state", state, normalize_state),
        _normalized("county", county, normalize_county),
        _normalized("parcel_id", parcel_id, parcel_key),
    )


def _normalized(name: str, value: str, normalize: Callable[[str], str]) -> str:
    try:
        return normalize(value)
    except InvalidInput as exc:
        raise invalid_parameter(name, exc.message) from exc
