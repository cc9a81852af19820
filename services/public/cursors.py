"""Opaque keyset cursors: the last row's sort value and id, bound to one search, signed.

A cursor carries a fingerprint of the filters and sort it was made for; presenting it with
other filters is an error rather than a silently wrong page. It is signed with HMAC-SHA256
under a server secret (``GATEWAY_CURSOR_SECRET``), so a client cannot hand the database a
value of its own making; the values are bounded on the way back in all the same.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from functools import lru_cache

from services.errors import InvalidInput
from settings import get_settings

MAX_VALUE_CHARS = 64
MAX_ROW_ID = 2**63 - 1
_SIGNATURE_BYTES = 16


@dataclass(frozen=True)
class Cursor:
    value: str | None  # the sort value as text; None once the page walk reached NULL values
    last_id: int
    fingerprint: str


@lru_cache(maxsize=1)
def cursor_secret() -> bytes:
    """The configured secret; without one, a random one for this process (cursors then work
    only against the process that made them: set the secret when running several)."""
    configured = get_settings().cursor_secret
    if configured:
        return configured.encode()
    return secrets.token_bytes(32)


def fingerprint_of(parts: dict[str, object]) -> str:
    canonical = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode((text + "=" * (-len(text) % 4)).encode())


def _signature(payload: bytes) -> bytes:
    return hmac.new(cursor_secret(), payload, hashlib.sha256).digest()[:_SIGNATURE_BYTES]


def encode_cursor(cursor: Cursor) -> str:
    payload = json.dumps({"v": cursor.value, "i": cursor.last_id, "f": cursor.fingerprint})
    return f"{_b64(payload.encode())}.{_b64(_signature(payload.encode()))}"


def decode_cursor(token: str, *, fingerprint: str) -> Cursor:
    """Parse ``token``; 422 naming ``cursor`` if it is malformed, not ours, or made for
    another search."""
    encoded_payload, _, encoded_signature = token.partition(".")
    try:
        payload = _unb64(encoded_payload)
        signature = _unb64(encoded_signature)
    except (binascii.Error, ValueError) as exc:
        raise cursor_error("cursor is malformed") from exc
    if not hmac.compare_digest(signature, _signature(payload)):
        raise cursor_error("cursor was not made by this server (or was altered)")
    try:
        fields = json.loads(payload)
        cursor = Cursor(value=fields["v"], last_id=fields["i"], fingerprint=fields["f"])
    except (ValueError, KeyError, TypeError) as exc:
        raise cursor_error("cursor is malformed") from exc
    if not _is_bounded(cursor):
        raise cursor_error("cursor is malformed")
    if cursor.fingerprint != fingerprint:
        raise cursor_error("cursor belongs to a search with other filters or another sort")
    return cursor


def _is_bounded(cursor: Cursor) -> bool:
    if not isinstance(cursor.last_id, int) or not 0 <= cursor.last_id <= MAX_ROW_ID:
        return False
    if cursor.value is None:
        return True
    return isinstance(cursor.value, str) and len(cursor.value) <= MAX_VALUE_CHARS


def cursor_error(message: str) -> InvalidInput:
    return InvalidInput(f"cursor: {message}", details=[{"field": "cursor", "message": message}])


_cursor_error = cursor_error
