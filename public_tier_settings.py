"""The public API's tiers as settings (``GATEWAY_PUBLIC_TIERS``): each tier's token bucket and
its daily quotas per feature, and the defaults."""

from __future__ import annotations

from pydantic import BaseModel, Field, field_validator

# Features are the daily quota counters.
PUBLIC_FEATURES = ("search", "detail", "top_lists", "history")


class PublicTierPolicy(BaseModel):
    """A tier's token bucket (refill per minute, capacity ``burst``) and daily quotas per
    feature: ``None`` is unlimited, ``0`` means the tier does not include the feature."""

    per_minute: int = Field(ge=1)
    burst: int = Field(ge=1)
    daily: dict[str, int | None]

    @field_validator("daily")
    @classmethod
    def _check_features(cls, value: dict[str, int | None]) -> dict[str, int | None]:
        unknown = sorted(set(value) - set(PUBLIC_FEATURES))
        if unknown:
            raise ValueError(f"unknown features {unknown}; known: {list(PUBLIC_FEATURES)}")
        if any(limit is not None and limit < 0 for limit in value.values()):
            raise ValueError("daily quotas must be >= 0 (or null for unlimited)")
        return {feature: value.get(feature, 0) for feature in PUBLIC_FEATURES}


def default_public_tiers() -> dict[str, PublicTierPolicy]:
    """Lowest to highest; the order decides which tier a 403 suggests."""

    def tier(per_minute: int, burst: int, *daily: int | None) -> PublicTierPolicy:
        return PublicTierPolicy(
            per_minute=per_minute, burst=burst, daily=dict(zip(PUBLIC_FEATURES, daily, strict=True))
        )

    return {
        "anonymous": tier(10, 5, 100, 200, 20, 0),
        "free": tier(30, 10, 1_000, 2_000, 100, 100),
        "starter": tier(60, 20, 10_000, 20_000, 1_000, 1_000),
        "premium": tier(120, 50, 100_000, 200_000, 10_000, 10_000),
        "enterprise": tier(600, 100, None, None, None, None),
    }
