"""Validation of result items, one at a time: a bad item is reported, the others go on.

An item is ``{task_id, parcel_id, platform, state, county, data{}, scraped_at,
parse_duration_ms, raw_html_hash?}``. ``task_id`` may name a task the ledger does not know
(results can come without a ledger row) but must be a UUID when given.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from services.errors import InvalidInput
from services.ingest.fields import extract_typed_row
from services.parcel_identity import normalize_county, normalize_state, parcel_key
from services.text_checks import text_problem

# A scrape stamped in the future would lock its parcel against every real later scrape.
MAX_CLOCK_SKEW = timedelta(minutes=5)
# Before parcels were scraped at all: an earlier stamp is a client bug (or a 0 epoch).
EARLIEST_SCRAPE = datetime(1990, 1, 1, tzinfo=UTC)
GO_ZERO_TIME = datetime(1, 1, 1, tzinfo=UTC)  # Go's time.Time{} as JSON: 0001-01-01T00:00:00Z
MAX_PARCEL_ID_CHARS = 128
MAX_NAME_CHARS = 64  # state, county
# A result may carry the page itself (``raw_html``); far larger is a client bug, not a parcel.
MAX_DATA_BYTES = 2 * 1024 * 1024
_PLATFORM = re.compile(r"^[a-z0-9_]{1,64}$")
_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")


class ItemRejected(ValueError):
    """One item is invalid; the message says which field and why."""


@dataclass(frozen=True)
class ItemError:
    index: int
    reason: str


@dataclass(frozen=True)
class ResultItem:
    task_id: uuid.UUID | None
    parcel_id: str  # as scraped, for display
    platform: str
    state: str
    county: str
    parcel_key: str
    data: dict[str, Any]
    data_json: str  # canonical JSON of data (sorted keys), what is stored and hashed
    data_hash: str  # sha256 of data_json
    scraped_at: datetime  # in UTC
    parse_duration_ms: float | None
    raw_html_hash: str | None
    typed: tuple[Any, ...]  # typed column values, in TYPED_COLUMNS order
    unparsed: tuple[str, ...]  # typed columns whose value did not parse (kept in data)

    @property
    def identity(self) -> tuple[str, str, str]:
        return (self.state, self.county, self.parcel_key)

    def to_payload(self) -> dict[str, Any]:
        """JSON for the ingest task; validating it again yields the same item."""
        return {
            "task_id": str(self.task_id) if self.task_id else None,
            "parcel_id": self.parcel_id,
            "platform": self.platform,
            "state": self.state,
            "county": self.county,
            "data": self.data,
            "scraped_at": self.scraped_at.isoformat(),
            "parse_duration_ms": self.parse_duration_ms,
            "raw_html_hash": self.raw_html_hash,
        }


def validate_result_items(
    raw_items: Sequence[object], *, now: datetime | None = None
) -> tuple[list[ResultItem], list[ItemError]]:
    """Valid items in order, and an error (index, reason) for each rejected one.

    The one validation of a result item, complete: what passes here can be written (typed
    parsing included), so the API refuses at the edge what the ingest would fail on.
    """
    now = now or datetime.now(UTC)
    items: list[ResultItem] = []
    errors: list[ItemError] = []
    for index, raw in enumerate(raw_items):
        try:
            items.append(validate_result_item(raw, now=now))
        except ItemRejected as exc:
            errors.append(ItemError(index=index, reason=str(exc)))
        except RecursionError:
            errors.append(ItemError(index=index, reason="data: nested too deeply"))
        except Exception as exc:  # noqa: BLE001  one odd item must never sink the others
            reason = f"item could not be validated ({exc.__class__.__name__})"
            errors.append(ItemError(index=index, reason=reason))
    return items, errors


def validate_result_item(raw: object, *, now: datetime) -> ResultItem:
    if not isinstance(raw, dict):
        raise ItemRejected(f"item must be an object, got {type(raw).__name__}")
    data = raw.get("data")
    if not isinstance(data, dict):
        raise ItemRejected("data: must be an object")
    parcel_id = check_parcel_id(raw.get("parcel_id"))
    data_json, data_hash = _canonical_json(data)
    try:
        state = _state_code(_required_text(raw, "state"))
        county = _county_slug(_required_text(raw, "county"))
        key = parcel_key(parcel_id)
    except InvalidInput as exc:
        raise ItemRejected(exc.message) from exc
    typed, unparsed = extract_typed_row(data)
    return ResultItem(
        task_id=check_task_id(raw.get("task_id")),
        parcel_id=parcel_id,
        platform=check_platform(raw.get("platform")),
        state=state,
        county=county,
        parcel_key=key,
        data=data,
        data_json=data_json,
        data_hash=data_hash,
        scraped_at=check_scraped_at(raw.get("scraped_at"), now=now),
        parse_duration_ms=_duration(raw.get("parse_duration_ms")),
        raw_html_hash=_raw_html_hash(raw.get("raw_html_hash")),
        typed=tuple(typed),
        unparsed=tuple(unparsed),
    )


# A chunk names few states and counties, over and over: normalise each spelling once.
_state_code = lru_cache(maxsize=1024)(normalize_state)
_county_slug = lru_cache(maxsize=4096)(normalize_county)


# Made once: json.dumps with options builds a new encoder on every call.
_CANONICAL_JSON = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
)


def _canonical_json(data: dict[str, Any]) -> tuple[str, str]:
    """Sorted-key JSON and its sha256; refuses what PostgreSQL's jsonb would refuse."""
    try:
        text = _CANONICAL_JSON.encode(data)
        encoded = text.encode("utf-8")
    except (TypeError, ValueError) as exc:  # NaN/Infinity, lone surrogates, odd types
        raise ItemRejected(f"data: not storable as JSON ({exc})") from exc
    if "\\u0000" in text:
        raise ItemRejected("data: contains a NUL character")
    if len(encoded) > MAX_DATA_BYTES:
        raise ItemRejected(f"data: larger than {MAX_DATA_BYTES} bytes as JSON")
    return text, hashlib.sha256(encoded).hexdigest()


def _required_text(raw: dict[str, Any], name: str) -> str:
    value = raw.get(name)
    if not isinstance(value, str) or not value.strip():
        raise ItemRejected(f"{name}: required text")
    if problem := text_problem(value, max_chars=MAX_NAME_CHARS):
        raise ItemRejected(f"{name}: {problem}")
    return value


def check_parcel_id(value: object) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        raise ItemRejected("parcel_id: required text")
    text = value.strip()
    if problem := text_problem(text, max_chars=MAX_PARCEL_ID_CHARS):
        raise ItemRejected(f"parcel_id: {problem}")
    return text


def check_task_id(value: object) -> uuid.UUID | None:
    if value is None:
        return None
    if isinstance(value, str) and not value.strip():
        return None  # the original's Go clients send "" for no task
    if not isinstance(value, str):
        raise ItemRejected("task_id: must be a UUID string")
    try:
        return uuid.UUID(value)
    except ValueError as exc:
        raise ItemRejected(f"task_id: {value[:64]!r} is not a UUID") from exc


def check_platform(value: object) -> str:
    if not isinstance(value, str) or not _PLATFORM.match(value.strip().lower()):
        raise ItemRejected("platform: required, letters, digits and underscores (max 64)")
    return value.strip().lower()


def check_scraped_at(value: object, *, now: datetime) -> datetime:
    """The stamp in UTC: PostgreSQL refuses some offsets Python accepts (``+20:00``).

    None (or no stamp) and Go's zero time, which the original's Go clients send when they
    set none, mean "scraped now": the time of validation.
    """
    if value is None:
        return now
    if not isinstance(value, str) or len(value) > 64:
        raise ItemRejected("scraped_at: required ISO 8601 timestamp")
    try:
        stamp = datetime.fromisoformat(value.strip())
    except ValueError as exc:
        raise ItemRejected(f"scraped_at: {value[:40]!r} is not an ISO 8601 timestamp") from exc
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)  # scrapers stamp in UTC
    try:
        stamp = stamp.astimezone(UTC)
    except OverflowError as exc:  # year 1 with a negative offset, year 9999 with a positive
        raise ItemRejected(f"scraped_at: {value[:40]!r} is out of range") from exc
    if stamp == GO_ZERO_TIME:
        return now
    if stamp > now + MAX_CLOCK_SKEW:
        raise ItemRejected(f"scraped_at: {value[:40]!r} is in the future")
    if stamp < EARLIEST_SCRAPE:
        raise ItemRejected(f"scraped_at: {value[:40]!r} is before {EARLIEST_SCRAPE.year}")
    return stamp


def _duration(value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ItemRejected("parse_duration_ms: must be a number >= 0")
    try:
        duration = float(value)
    except OverflowError as exc:  # an integer of hundreds of digits
        raise ItemRejected("parse_duration_ms: too large") from exc
    if not math.isfinite(duration):  # 1e400 parses as inf
        raise ItemRejected("parse_duration_ms: must be finite")
    return duration


def _raw_html_hash(value: object) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not _SHA256_HEX.match(value.strip().lower()):
        raise ItemRejected("raw_html_hash: must be a sha256 hex digest (64 characters)")
    return value.strip().lower()
