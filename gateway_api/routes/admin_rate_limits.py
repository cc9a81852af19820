"""``/admin/rate-limits``: fleet-wide start limits per platform and per (platform, county).

A change reaches every API process and Celery worker within ``GATEWAY_RATE_LIMIT_REFRESH_S``,
without a restart.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path
from pydantic import BaseModel, ConfigDict, Field

from gateway_api.api_docs import ADMIN_ERRORS, error_responses
from gateway_api.auth import AdminDep
from gateway_api.deps import SessionDep
from services.dispatch import rate_limits as rate_limit_service
from services.dispatch.politeness import LimitInForce, read_limits_in_force
from services.dispatch.rate_limits import Scope, parse_scope

router = APIRouter(prefix="/admin/rate-limits", tags=["admin"], responses=ADMIN_ERRORS)

PlatformName = Annotated[str, Path(max_length=64, description="e.g. qpublic")]
CountyName = Annotated[str, Path(max_length=64, description="e.g. dixie (as enqueued)")]
_NOT_FOUND = {404: "No such platform, or (clearing) no limit is set for the scope"}


class RateLimitOut(BaseModel):
    scope: str = Field(description="platform, or platform/county")
    platform: str
    county: str | None = Field(description="null: the limit covers the whole platform")
    per_minute: int = Field(description="Starts a minute as configured")
    effective_per_minute: float = Field(
        description="Starts a minute allowed now: lower while the site pushes back"
    )
    cut_level: int = Field(description="Halvings in force after pushback (0: none)")
    updated_at: datetime

    @classmethod
    def from_limit(cls, limit: LimitInForce) -> RateLimitOut:
        scope = limit.rate.limit.scope
        return cls(
            scope=scope.label,
            platform=scope.platform,
            county=scope.county or None,
            per_minute=limit.rate.limit.per_minute,
            effective_per_minute=limit.rate.per_minute,
            cut_level=limit.rate.cut_level,
            updated_at=limit.updated_at,
        )


class RateLimitListOut(BaseModel):
    rate_limits: list[RateLimitOut]


class SetRateLimitIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    per_minute: int = Field(
        ge=1, le=rate_limit_service.MAX_PER_MINUTE, description="Task starts a minute, fleet-wide"
    )


class ClearedOut(BaseModel):
    scope: str
    cleared: bool = True


def _in_force(session: SessionDep, scope: Scope) -> RateLimitOut:
    found = [limit for limit in read_limits_in_force(session) if limit.rate.limit.scope == scope]
    return RateLimitOut.from_limit(found[0])


@router.get("", summary="List rate limits")
def list_rate_limits(_: AdminDep, session: SessionDep) -> RateLimitListOut:
    """Every configured limit with the rate in force now."""
    limits = read_limits_in_force(session)
    return RateLimitListOut(rate_limits=[RateLimitOut.from_limit(limit) for limit in limits])


@router.put(
    "/{platform}",
    summary="Set a platform's rate limit",
    responses=error_responses(404, 413, 422, notes=_NOT_FOUND),
)
def set_platform_rate_limit(
    platform: PlatformName, body: SetRateLimitIn, _: AdminDep, session: SessionDep
) -> RateLimitOut:
    """At most ``per_minute`` starts a minute of the platform's tasks, by all workers."""
    scope = parse_scope(platform)
    rate_limit_service.set_rate_limit(session, scope, per_minute=body.per_minute)
    return _in_force(session, scope)


@router.put(
    "/{platform}/{county}",
    summary="Set a county's rate limit",
    responses=error_responses(404, 413, 422, notes=_NOT_FOUND),
)
def set_county_rate_limit(
    platform: PlatformName,
    county: CountyName,
    body: SetRateLimitIn,
    _: AdminDep,
    session: SessionDep,
) -> RateLimitOut:
    """At most ``per_minute`` starts a minute in the county (within its platform's limit)."""
    scope = parse_scope(f"{platform}/{county}")
    rate_limit_service.set_rate_limit(session, scope, per_minute=body.per_minute)
    return _in_force(session, scope)


@router.delete(
    "/{platform}",
    summary="Clear a platform's rate limit",
    responses=error_responses(404, 422, notes=_NOT_FOUND),
)
def clear_platform_rate_limit(
    platform: PlatformName, _: AdminDep, session: SessionDep
) -> ClearedOut:
    """The platform's starts are no longer limited as a whole (county limits stay)."""
    scope = parse_scope(platform)
    rate_limit_service.clear_rate_limit(session, scope)
    return ClearedOut(scope=scope.label)


@router.delete(
    "/{platform}/{county}",
    summary="Clear a county's rate limit",
    responses=error_responses(404, 422, notes=_NOT_FOUND),
)
def clear_county_rate_limit(
    platform: PlatformName, county: CountyName, _: AdminDep, session: SessionDep
) -> ClearedOut:
    """The county's starts are limited by its platform's limit alone, if any."""
    scope = parse_scope(f"{platform}/{county}")
    rate_limit_service.clear_rate_limit(session, scope)
    return ClearedOut(scope=scope.label)
