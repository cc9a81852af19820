"""Opaque keyset cursors: the last row's sort value and id, bound to one search.

A cursor carries a fingerprint of the filters and sort it was made for; presenting it with
other filters is an error rather than a silently wrong page.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass

from services.errors import InvalidInput


@dataclass(frozen=True)
class Cursor:
    value: str | None  # the sort value as text; None once the page walk reached NULL values
    last_id: int
    fingerprint: str


def fingerprint_of(parts: dict[str, object]) -> str:
    canonical = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def encode_cursor(cursor: Cursor) -> str:
    payload = json.dumps({"v": cursor.value, "i": cursor.last_id, "f": cursor.fingerprint})
    return base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")


def decode_cursor(token: str, *, fingerprint: str) -> Cursor:
    """Parse ``token``; 422 naming ``cursor`` if it is malformed or made for another search."""
    try:
        padded = token + "=" * (-len(token) % 4)
        payload = json.loads(base64.urlsafe_b64decode(padded.encode()))
        cursor = Cursor(value=payload["v"], last_id=payload["i"], fingerprint=payload["f"])
    except (binascii.Error, ValueError, KeyError, TypeError) as exc:
        raise _cursor_error("cursor is malformed") from exc
    if not isinstance(cursor.last_id, int) or not isinstance(cursor.value, str | None):
        raise _cursor_error("cursor is malformed")
    if cursor.fingerprint != fingerprint:
        raise _cursor_error("cursor belongs to a search with other filters or another sort")
    return cursor


def _cursor_error(message: str) -> InvalidInput:
    return InvalidInput(f"cursor: {message}", details=[{"field": "cursor", "message": message}])
