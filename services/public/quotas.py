"""Daily per-feature quotas in Redis, counted only for answers that succeeded.

A call reserves one unit before it runs (an atomic increment that is undone when it would
pass the limit) and refunds it if the call fails, so the count is exact under concurrency
and failed calls cost nothing. Days are UTC days.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import redis

from services.errors import ErrorCode, Forbidden
from services.public.tiers import Feature, Tier, tier_allowing

QUOTA_KEY_PREFIX = "public:quota:"
_KEY_TTL_S = 2 * 24 * 3600

# KEYS[1] counter; ARGV: limit, ttl. Returns {reserved 0/1, count after the call}.
RESERVE_LUA = """
local used = redis.call('INCR', KEYS[1])
if used == 1 then
  redis.call('EXPIRE', KEYS[1], tonumber(ARGV[2]))
end
if used > tonumber(ARGV[1]) then
  redis.call('DECR', KEYS[1])
  return {0, used - 1}
end
return {1, used}
"""


@dataclass(frozen=True)
class Reservation:
    key: str


@dataclass(frozen=True)
class FeatureUsage:
    feature: Feature
    daily_limit: int | None
    used: int
    remaining: int | None


class QuotaError(Forbidden):
    code = ErrorCode.TIER_LIMIT_EXCEEDED


class TierRestricted(Forbidden):
    """The tier does not include the feature at all (the original's 403 ``FORBIDDEN``)."""


def today_utc(now: datetime | None = None) -> str:
    return (now or datetime.now(UTC)).strftime("%Y-%m-%d")


def next_reset_at(now: datetime | None = None) -> datetime:
    moment = now or datetime.now(UTC)
    return datetime(moment.year, moment.month, moment.day, tzinfo=UTC) + timedelta(days=1)


def quota_counter_key(identity: str, feature: Feature, day: str) -> str:
    return f"{QUOTA_KEY_PREFIX}{day}:{identity}:{feature.value}"


class QuotaCounter:
    def __init__(self, client: redis.Redis) -> None:
        self._client = client
        self._reserve = client.register_script(RESERVE_LUA)

    def reserve(self, identity: str, tier: Tier, feature: Feature) -> Reservation:
        """Take one unit of today's quota or raise 403 naming a tier that would allow it."""
        limit = tier.daily_limit(feature)
        key = quota_counter_key(identity, feature, today_utc())
        if limit == 0:
            raise _restricted(tier, feature)
        if limit is None:
            with self._client.pipeline() as pipeline:
                pipeline.incr(key)
                pipeline.expire(key, _KEY_TTL_S)
                pipeline.execute()
            return Reservation(key=key)
        reserved, used = self._reserve(keys=[key], args=[limit, _KEY_TTL_S])
        if not reserved:
            raise _exhausted(tier, feature, limit=limit, used=int(used))
        return Reservation(key=key)

    def refund(self, reservation: Reservation) -> None:
        self._client.decr(reservation.key)

    def usage(self, identity: str, tier: Tier) -> list[FeatureUsage]:
        day = today_utc()
        keys = [quota_counter_key(identity, feature, day) for feature in Feature]
        counts = self._client.mget(keys)
        usages = []
        for feature, raw in zip(Feature, counts, strict=True):
            used = max(int(raw or 0), 0)
            limit = tier.daily_limit(feature)
            remaining = None if limit is None else max(limit - used, 0)
            usages.append(FeatureUsage(feature, limit, used, remaining))
        return usages


def _upgrade_details(tier: Tier, feature: Feature) -> tuple[str, dict[str, object]]:
    better = tier_allowing(feature, above=tier)
    if better is None:
        return "no tier allows more", {"tier": tier.name, "feature": feature.value}
    limit = better.daily_limit(feature)
    allowance = "without a daily limit" if limit is None else f"{limit} a day"
    details: dict[str, object] = {
        "tier": tier.name,
        "feature": feature.value,
        "allowed_by_tier": better.name,
        "allowed_daily_limit": limit,
    }
    return f"tier {better.name!r} allows {allowance}", details


def _restricted(tier: Tier, feature: Feature) -> TierRestricted:
    hint, details = _upgrade_details(tier, feature)
    return TierRestricted(
        f"tier {tier.name!r} does not include {feature.value}; {hint}", details=details
    )


def _exhausted(tier: Tier, feature: Feature, *, limit: int, used: int) -> QuotaError:
    hint, details = _upgrade_details(tier, feature)
    details |= {"daily_limit": limit, "used": used, "resets_at": next_reset_at().isoformat()}
    return QuotaError(
        f"the daily {feature.value} quota of tier {tier.name!r} ({limit}) is used up; {hint}",
        details=details,
    )
