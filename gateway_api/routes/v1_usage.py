"""``/v1/usage``: the caller's tier, limits, and today's counts per feature."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from gateway_api.api_docs import PUBLIC_ERRORS
from gateway_api.public_access import (
    PublicClientDep,
    allow_query_parameters,
    get_quota_counter,
)
from services.public.quotas import next_reset_at
from services.public.tiers import Feature

router = APIRouter(prefix="/v1", tags=["public"], responses=PUBLIC_ERRORS)
# The original's counter names; other features follow the pattern.
_ORIGINAL_USAGE_NAMES = {Feature.SEARCH: "daily_search", Feature.DETAIL: "daily_details"}


class RateLimitOut(BaseModel):
    per_minute: int
    burst: int
    remaining: int = Field(description="Tokens left now (after this call)")


class FeatureUsageOut(BaseModel):
    feature: str
    daily_limit: int | None = Field(description="null = unlimited; 0 = not in this tier")
    used_today: int
    remaining_today: int | None


class UsageOut(BaseModel):
    user_id: str = Field(description="`anonymous`, or `key:<id>` of your API key")
    tier: str
    usage: dict[str, int] = Field(
        description="Today's counts as the original API named them: `daily_search`, "
        "`daily_details`, ... (the same numbers as `features[].used_today`)"
    )
    api_key_prefix: str | None = Field(description="null when anonymous")
    rate_limit: RateLimitOut
    features: list[FeatureUsageOut]
    resets_at: datetime = Field(description="When today's counts start again (UTC midnight)")


@router.get(
    "/usage",
    dependencies=[allow_query_parameters()],
    summary="Get your limits and usage",
)
def get_usage(client: PublicClientDep, request: Request) -> UsageOut:
    """Your tier, its limits, and what you have used and have left today."""
    decision = request.state.public_rate_limit
    usages = get_quota_counter().usage(client.identity, client.tier)
    return UsageOut(
        user_id=f"key:{client.api_key.id}" if client.api_key else "anonymous",
        tier=client.tier.name,
        usage={_ORIGINAL_USAGE_NAMES.get(u.feature, f"daily_{u.feature}"): u.used for u in usages},
        api_key_prefix=client.api_key.prefix if client.api_key else None,
        rate_limit=RateLimitOut(
            per_minute=client.tier.per_minute, burst=client.tier.burst, remaining=decision.remaining
        ),
        features=[
            FeatureUsageOut(
                feature=usage.feature.value,
                daily_limit=usage.daily_limit,
                used_today=usage.used,
                remaining_today=usage.remaining,
            )
            for usage in usages
        ],
        resets_at=next_reset_at(),
    )
