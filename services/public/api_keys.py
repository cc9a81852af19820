"""API keys: generated with 256 bits of randomness, shown once, stored as sha256.

A key reads ``tlg_<prefix>_<secret>``. The prefix is random, unique and not secret (it names
the key in listings); the lookup on each request is by the hash of the whole key, so nothing
about the secret is compared byte by byte in Python.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.models import ApiKey
from services.errors import InvalidInput, NotFound, Unauthorized
from services.public.tiers import get_tier, key_tier_names

KEY_SCHEME = "tlg"
_PREFIX_BYTES = 6  # 8 url-safe characters
_SECRET_BYTES = 32  # 256 bits


@dataclass(frozen=True)
class IssuedKey:
    """What the caller sees once: the full key beside its stored record."""

    key: str
    record: ApiKey


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _new_key() -> tuple[str, str]:
    prefix = f"{KEY_SCHEME}_{secrets.token_urlsafe(_PREFIX_BYTES)}"
    return prefix, f"{prefix}_{secrets.token_urlsafe(_SECRET_BYTES)}"


def _check_tier(tier: str) -> str:
    if tier not in key_tier_names():
        choices = key_tier_names()
        raise InvalidInput(f"tier {tier!r} cannot be given to a key; choose from {choices}")
    return get_tier(tier).name


def create_api_key(session: Session, *, tier: str, owner: str) -> IssuedKey:
    owner = owner.strip()
    if not owner:
        raise InvalidInput("owner must not be empty")
    prefix, key = _new_key()
    record = ApiKey(prefix=prefix, key_hash=hash_api_key(key), tier=_check_tier(tier), owner=owner)
    session.add(record)
    session.flush()
    return IssuedKey(key=key, record=record)


def list_api_keys(session: Session, *, include_revoked: bool = False) -> list[ApiKey]:
    query = select(ApiKey).order_by(ApiKey.id)
    if not include_revoked:
        query = query.where(ApiKey.revoked_at.is_(None))
    return list(session.scalars(query))


def get_api_key(session: Session, key_id: int) -> ApiKey:
    record = session.get(ApiKey, key_id)
    if record is None:
        raise NotFound(f"API key {key_id} does not exist")
    return record


def rotate_api_key(session: Session, key_id: int) -> IssuedKey:
    """A new secret (and prefix) for the same key record: tier, owner, counters stay; the
    old key stops working at once."""
    record = get_api_key(session, key_id)
    if record.is_revoked:
        raise InvalidInput(f"API key {key_id} ({record.prefix}) is revoked and cannot be rotated")
    prefix, key = _new_key()
    record.prefix, record.key_hash = prefix, hash_api_key(key)
    record.rotated_at = datetime.now(UTC)
    session.flush()
    return IssuedKey(key=key, record=record)


def revoke_api_key(session: Session, key_id: int) -> ApiKey:
    """Idempotent: revoking a revoked key keeps its first revocation time."""
    record = get_api_key(session, key_id)
    if record.revoked_at is None:
        record.revoked_at = datetime.now(UTC)
        session.flush()
    return record


def set_api_key_tier(session: Session, key_id: int, *, tier: str) -> ApiKey:
    record = get_api_key(session, key_id)
    record.tier = _check_tier(tier)
    session.flush()
    return record


def authenticate_api_key(session: Session, key: str, *, touch_interval_s: int = 60) -> ApiKey:
    """The active key record for ``key``; 401 for an unknown, malformed or revoked key."""
    if not key.startswith(f"{KEY_SCHEME}_") or len(key) > 128:
        raise Unauthorized("the API key is not valid")
    record = session.scalar(select(ApiKey).where(ApiKey.key_hash == hash_api_key(key)))
    if record is None:
        raise Unauthorized("the API key is not valid")
    if record.is_revoked:
        raise Unauthorized(f"the API key {record.prefix} was revoked")
    _touch(session, record, interval_s=touch_interval_s)
    return record


def _touch(session: Session, record: ApiKey, *, interval_s: int) -> None:
    # One conditional write per key per interval, not one per request.
    now = datetime.now(UTC)
    last = record.last_used_at
    if last is not None and now - last < timedelta(seconds=interval_s):
        return
    record.last_used_at = now
    session.flush()
