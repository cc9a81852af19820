"""Tiers as configuration: each has a token bucket and daily quotas per feature."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from public_tier_settings import PublicTierPolicy
from services.errors import InvalidInput
from settings import get_settings

ANONYMOUS_TIER = "anonymous"


class Feature(enum.StrEnum):
    SEARCH = "search"
    DETAIL = "detail"
    TOP_LISTS = "top_lists"
    HISTORY = "history"


@dataclass(frozen=True)
class Tier:
    name: str
    per_minute: int
    burst: int
    daily: dict[Feature, int | None]  # None = unlimited, 0 = not included

    def daily_limit(self, feature: Feature) -> int | None:
        return self.daily.get(feature, 0)


def _to_tier(name: str, policy: PublicTierPolicy) -> Tier:
    daily = {Feature(feature): limit for feature, limit in policy.daily.items()}
    return Tier(name=name, per_minute=policy.per_minute, burst=policy.burst, daily=daily)


def all_tiers() -> list[Tier]:
    """Configured tiers, lowest first."""
    return [_to_tier(name, policy) for name, policy in get_settings().public_tiers.items()]


def get_tier(name: str) -> Tier:
    policy = get_settings().public_tiers.get(name)
    if policy is None:
        raise InvalidInput(f"unknown tier {name!r}; configured tiers: {tier_names()}")
    return _to_tier(name, policy)


def tier_names() -> list[str]:
    return list(get_settings().public_tiers)


def key_tier_names() -> list[str]:
    """Tiers an API key can carry (anonymous is what having no key means)."""
    return [name for name in tier_names() if name != ANONYMOUS_TIER]


def tier_allowing(feature: Feature, *, above: Tier) -> Tier | None:
    """The first tier after ``above`` whose daily quota for ``feature`` is larger (or unlimited)."""
    current = above.daily_limit(feature)
    tiers = all_tiers()
    names = [tier.name for tier in tiers]
    start = names.index(above.name) + 1 if above.name in names else 0
    for tier in tiers[start:]:
        limit = tier.daily_limit(feature)
        if limit is None or (current is not None and limit > current):
            return tier
    return None
