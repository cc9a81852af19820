"""Platforms as a managed resource: list, add, enable/disable, set the retry policy.

A platform is a row, not code. A disabled platform keeps its tasks but is skipped by leasing
and refused by enqueue; its retry policy (``max_retries``, ``retry_backoff_base_s``) falls
back to the gateway's settings where it is NULL. Platforms are never deleted here: the task
ledger refers to them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from db.models import Platform
from services.errors import Conflict, InvalidInput, NotFound

NAME_PATTERN: Final = re.compile(r"^[a-z0-9_]{1,64}$")
MAX_RETRIES_LIMIT: Final = 20
MAX_BACKOFF_BASE_S: Final = 86_400
MAX_DESCRIPTION_CHARS: Final = 500


class _Unset:
    """A field a change leaves as it is (``None`` means: back to the gateway default)."""

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Final = _Unset()


@dataclass(frozen=True)
class PlatformChanges:
    description: str | _Unset = UNSET
    is_enabled: bool | _Unset = UNSET
    max_retries: int | _Unset | None = UNSET
    retry_backoff_base_s: int | _Unset | None = UNSET


def check_platform_name(name: str) -> str:
    cleaned = name.strip().lower()
    if not NAME_PATTERN.match(cleaned):
        raise InvalidInput(
            f"name: {name[:80]!r} is not a platform name (lower-case letters, digits and "
            "underscores, at most 64)"
        )
    return cleaned


def _check_description(description: str) -> str:
    if len(description) > MAX_DESCRIPTION_CHARS:
        raise InvalidInput(f"description: longer than {MAX_DESCRIPTION_CHARS} characters")
    return description.strip()


def _check_max_retries(value: int | None) -> int | None:
    if value is not None and not 0 <= value <= MAX_RETRIES_LIMIT:
        raise InvalidInput(f"max_retries: must be 0..{MAX_RETRIES_LIMIT} or null, got {value}")
    return value


def _check_backoff(value: int | None) -> int | None:
    if value is not None and not 0 <= value <= MAX_BACKOFF_BASE_S:
        raise InvalidInput(
            f"retry_backoff_base_s: must be 0..{MAX_BACKOFF_BASE_S} or null, got {value}"
        )
    return value


def list_platforms(session: Session) -> list[Platform]:
    return list(session.execute(select(Platform).order_by(Platform.name)).scalars())


def get_platform(session: Session, name: str) -> Platform:
    platform = session.get(Platform, name.strip().lower())
    if platform is None:
        raise NotFound(f"platform {name!r} does not exist")
    return platform


def add_platform(
    session: Session,
    name: str,
    *,
    description: str = "",
    is_enabled: bool = True,
    max_retries: int | None = None,
    retry_backoff_base_s: int | None = None,
) -> Platform:
    """Insert a platform; an existing name is a conflict (change it with ``update_platform``)."""
    values = {
        "name": check_platform_name(name),
        "description": _check_description(description),
        "is_enabled": is_enabled,
        "max_retries": _check_max_retries(max_retries),
        "retry_backoff_base_s": _check_backoff(retry_backoff_base_s),
    }
    inserted = session.execute(
        insert(Platform).values(**values).on_conflict_do_nothing().returning(Platform.name)
    ).scalar_one_or_none()
    if inserted is None:
        raise Conflict(f"platform {values['name']!r} already exists")
    return get_platform(session, inserted)


def update_platform(session: Session, name: str, changes: PlatformChanges) -> Platform:
    """Apply the fields ``changes`` sets; the row is locked so concurrent changes queue."""
    platform = session.execute(
        select(Platform).where(Platform.name == name.strip().lower()).with_for_update()
    ).scalar_one_or_none()
    if platform is None:
        raise NotFound(f"platform {name!r} does not exist")
    if not isinstance(changes.description, _Unset):
        platform.description = _check_description(changes.description)
    if not isinstance(changes.is_enabled, _Unset):
        platform.is_enabled = changes.is_enabled
    if not isinstance(changes.max_retries, _Unset):
        platform.max_retries = _check_max_retries(changes.max_retries)
    if not isinstance(changes.retry_backoff_base_s, _Unset):
        platform.retry_backoff_base_s = _check_backoff(changes.retry_backoff_base_s)
    session.flush()
    return platform
