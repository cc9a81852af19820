"""Start limits as data: set, clear and list them, and read them with a short cache.

A limit is ``per_minute`` starts of a platform's tasks (county '') or of one county's. Every
process reads the whole table at most every ``rate_limit_refresh_s``, so a change reaches the
fleet within that without a restart; the table is small (one row per limited scope).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Final

from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from db.models import RateLimit
from services.dispatch.platforms import check_platform_name, get_platform
from services.errors import InvalidInput, NotFound
from services.parcel_identity import normalize_county
from settings import get_settings

MAX_PER_MINUTE: Final = 100_000
WHOLE_PLATFORM: Final = ""
MAX_COUNTY_CHARS: Final = 64


@dataclass(frozen=True)
class Scope:
    """A platform (county '') or one of its counties."""

    platform: str
    county: str = WHOLE_PLATFORM

    @property
    def label(self) -> str:
        return f"{self.platform}/{self.county}" if self.county else self.platform


@dataclass(frozen=True)
class ScopeLimit:
    scope: Scope
    per_minute: int


@dataclass(frozen=True)
class LimitTable:
    """Every configured limit, by scope."""

    per_minute: dict[Scope, int]

    def limits_for(self, platform: str, county: str) -> list[ScopeLimit]:
        """The limits a start of a task in (platform, county) must fit: platform, county."""
        scopes = (Scope(platform), Scope(platform, county))
        return [ScopeLimit(s, self.per_minute[s]) for s in scopes if s in self.per_minute]

    def pushback_scope(self, platform: str, county: str) -> ScopeLimit | None:
        """Where a site's pushback lands: the county's limit if it has one, else the
        platform's; ``None`` when neither is limited (there is no rate to lower)."""
        limits = self.limits_for(platform, county)
        return limits[-1] if limits else None


_cache: tuple[float, LimitTable] | None = None


def current_limits(session: Session) -> LimitTable:
    """The table as read at most ``rate_limit_refresh_s`` ago by this process."""
    global _cache
    now = time.monotonic()
    if _cache is not None and now - _cache[0] < get_settings().rate_limit_refresh_s:
        return _cache[1]
    rows = session.execute(select(RateLimit.platform, RateLimit.county, RateLimit.per_minute))
    table = LimitTable({Scope(p, c): n for p, c, n in rows})
    _cache = (now, table)
    return table


def forget_cached_limits() -> None:
    """This process sees its own change at once (others within the refresh interval)."""
    global _cache
    _cache = None


def parse_scope(text: str) -> Scope:
    """``qpublic`` or ``qpublic/dixie`` (the county normalised as enqueue stores it)."""
    platform, _, county = text.partition("/")
    if "/" in county:
        raise InvalidInput(f"scope: {text[:80]!r} is not 'platform' or 'platform/county'")
    cleaned = normalize_county(county) if county.strip() else WHOLE_PLATFORM
    if len(cleaned) > MAX_COUNTY_CHARS:
        raise InvalidInput(f"scope: county longer than {MAX_COUNTY_CHARS} characters")
    return Scope(check_platform_name(platform), cleaned)


def list_rate_limits(session: Session) -> list[RateLimit]:
    return list(
        session.scalars(select(RateLimit).order_by(RateLimit.platform, RateLimit.county)).all()
    )


def set_rate_limit(session: Session, scope: Scope, *, per_minute: int) -> RateLimit:
    if not 1 <= per_minute <= MAX_PER_MINUTE:
        raise InvalidInput(f"per_minute: must be 1..{MAX_PER_MINUTE}, got {per_minute}")
    get_platform(session, scope.platform)  # 404 for an unknown platform
    row = session.scalars(
        insert(RateLimit)
        .values(platform=scope.platform, county=scope.county, per_minute=per_minute)
        .on_conflict_do_update(
            index_elements=[RateLimit.platform, RateLimit.county],
            set_={"per_minute": per_minute, "updated_at": func.now()},
        )
        .returning(RateLimit),
        execution_options={"populate_existing": True},
    ).one()
    forget_cached_limits()
    return row


def clear_rate_limit(session: Session, scope: Scope) -> None:
    deleted = session.execute(
        delete(RateLimit)
        .where(RateLimit.platform == scope.platform, RateLimit.county == scope.county)
        .returning(RateLimit.platform)
    ).first()
    if deleted is None:
        raise NotFound(f"no rate limit is set for {scope.label}")
    forget_cached_limits()
