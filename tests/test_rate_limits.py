"""Token buckets and daily quotas of the public API, per tier, with their headers."""

from __future__ import annotations

import math
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import pytest
import redis
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY
from sqlalchemy.orm import Session

from services.public.quotas import (
    QuotaCounter,
    QuotaError,
    next_reset_at,
    quota_counter_key,
    today_utc,
)
from services.public.rate_limits import RateLimiter
from services.public.tiers import Feature, Tier, get_tier, tier_names
from tests.public_factories import ParcelSpec, add_api_key, add_parcels
from tests.waiting import wait_for

ANONYMOUS_IDENTITY = "peer:testclient"  # TestClient's peer is not an IP address
# Tokens refilled while a burst is spent are a few at most (enterprise: 10 a second).
DRAIN_LIMIT = 50


def headers_for(db_session: Session, tier: str) -> tuple[dict[str, str], str]:
    if tier == "anonymous":
        return {}, ANONYMOUS_IDENTITY
    issued = add_api_key(db_session, tier)
    return {"X-API-Key": issued.key}, f"key:{issued.record.id}"


def rate_limit_hits(tier: str, limit: str) -> float:
    value = REGISTRY.get_sample_value(
        "gateway_rate_limit_hits_total", {"tier": tier, "limit": limit}
    )
    return value or 0.0


@pytest.mark.parametrize("tier_name", ["anonymous", "free", "starter", "premium", "enterprise"])
def test_each_tier_gets_its_burst_then_429_with_retry_after_and_headers(
    api_client: TestClient, db_session: Session, tier_name: str
) -> None:
    tier = get_tier(tier_name)
    headers, _ = headers_for(db_session, tier_name)
    hits_before = rate_limit_hits(tier_name, "rate")
    started = time.monotonic()
    for expected_remaining in range(tier.burst - 1, -1, -1):
        response = api_client.get("/v1/usage", headers=headers)
        assert response.status_code == 200, response.text
        assert response.headers["X-RateLimit-Limit"] == str(tier.per_minute)
        assert response.headers["X-RateLimit-Burst"] == str(tier.burst)
        # Tokens refill while the loop runs: never more than the elapsed time allows.
        refilled = int(response.headers["X-RateLimit-Remaining"]) - expected_remaining
        assert 0 <= refilled <= (time.monotonic() - started) * tier.per_minute / 60 + 1
    for _ in range(DRAIN_LIMIT):  # drain what refilled meanwhile
        response = api_client.get("/v1/usage", headers=headers)
        if response.status_code != 200:
            break

    assert response.status_code == 429, f"no 429 after {DRAIN_LIMIT} more calls"
    assert response.json()["error"]["code"] == "RATE_LIMIT_EXCEEDED"
    assert tier_name in response.json()["error"]["message"]
    assert response.headers["X-RateLimit-Remaining"] == "0"
    assert response.headers["X-RateLimit-Limit"] == str(tier.per_minute)
    token_interval_s = 60 / tier.per_minute
    assert 1 <= int(response.headers["Retry-After"]) <= math.ceil(token_interval_s)
    reset_s = int(response.headers["X-RateLimit-Reset"])
    assert 0 < reset_s <= math.ceil(tier.burst * token_interval_s)
    assert rate_limit_hits(tier_name, "rate") == hits_before + 1


def test_health_and_metrics_are_never_limited(api_client: TestClient) -> None:
    for _ in range(get_tier("anonymous").burst + 3):
        assert api_client.get("/health").status_code == 200
        assert api_client.get("/metrics").status_code == 200
    response = api_client.get("/health")
    assert "X-RateLimit-Limit" not in response.headers
    assert api_client.get("/v1/usage").status_code == 200


def test_buckets_are_per_key_and_per_ip(api_client: TestClient, db_session: Session) -> None:
    first, second = add_api_key(db_session, "free"), add_api_key(db_session, "free")
    for _ in range(get_tier("free").burst):
        assert api_client.get("/v1/usage", headers={"X-API-Key": first.key}).status_code == 200
    assert api_client.get("/v1/usage", headers={"X-API-Key": first.key}).status_code == 429
    assert api_client.get("/v1/usage", headers={"X-API-Key": second.key}).status_code == 200
    assert api_client.get("/v1/usage").status_code == 200  # anonymous: the IP's own bucket


def test_error_answers_under_v1_carry_the_rate_limit_headers(api_client: TestClient) -> None:
    response = api_client.get("/v1/parcels/FL/dixie/nope")
    assert response.status_code == 404
    assert response.headers["X-RateLimit-Remaining"] == str(get_tier("anonymous").burst - 1)
    response = api_client.get("/v1/search", params={"bogus": "1"})
    assert response.status_code == 422
    assert "X-RateLimit-Limit" in response.headers


def test_bucket_refills_over_time(redis_client: redis.Redis) -> None:
    fast = Tier(name="fast", per_minute=6000, burst=2, daily={})  # one token per 10 ms
    limiter = RateLimiter(redis_client)
    assert limiter.take("ip:1", fast).is_allowed
    assert limiter.take("ip:1", fast).is_allowed
    denied = limiter.take("ip:1", fast)
    assert not denied.is_allowed and denied.retry_after_s == 1  # rounded up to a second
    wait_for(lambda: limiter.take("ip:1", fast).is_allowed, timeout_s=2)


def test_concurrent_requests_never_share_a_token(redis_client: redis.Redis) -> None:
    slow = Tier(name="slow", per_minute=1, burst=10, daily={})
    limiter = RateLimiter(redis_client)
    with ThreadPoolExecutor(max_workers=16) as pool:
        decisions = list(pool.map(lambda _: limiter.take("key:7", slow), range(64)))
    assert sum(decision.is_allowed for decision in decisions) == 10


@pytest.mark.parametrize("tier_name", ["anonymous", "free", "starter", "premium"])
def test_each_tier_daily_search_quota_ends_in_403_naming_the_next_tier(
    api_client: TestClient, db_session: Session, redis_client: redis.Redis, tier_name: str
) -> None:
    headers, identity = headers_for(db_session, tier_name)
    limit = get_tier(tier_name).daily_limit(Feature.SEARCH)
    assert limit is not None
    key = quota_counter_key(identity, Feature.SEARCH, today_utc())
    redis_client.set(key, limit - 1)

    assert api_client.get("/v1/search", headers=headers).status_code == 200
    response = api_client.get("/v1/search", headers=headers)

    assert response.status_code == 403
    error = response.json()["error"]
    next_tier = tier_names()[tier_names().index(tier_name) + 1]
    assert error["code"] == "TIER_LIMIT_EXCEEDED"
    assert response.json()["detail"]["code"] == "TIER_LIMIT_EXCEEDED"  # the original's place
    assert response.headers["X-Upgrade-Required"] == "true"
    assert error["details"]["allowed_by_tier"] == next_tier
    assert f"tier {next_tier!r}" in error["message"]
    assert error["details"]["used"] == limit
    assert "X-RateLimit-Remaining" in response.headers
    assert int(redis_client.get(key) or 0) == limit


def test_enterprise_has_no_daily_quota_but_usage_is_counted(
    api_client: TestClient, db_session: Session
) -> None:
    headers, _ = headers_for(db_session, "enterprise")
    for _ in range(3):
        assert api_client.get("/v1/search", headers=headers).status_code == 200
    usage = api_client.get("/v1/usage", headers=headers).json()
    search = next(f for f in usage["features"] if f["feature"] == "search")
    assert search == {
        "feature": "search",
        "daily_limit": None,
        "used_today": 3,
        "remaining_today": None,
    }


def test_a_feature_outside_the_tier_is_403_naming_the_tier_that_has_it(
    api_client: TestClient, db_session: Session
) -> None:
    [parcel] = add_parcels(db_session, [ParcelSpec(parcel_id="01-02-03")])
    hits_before = rate_limit_hits("anonymous", "tier")
    response = api_client.get(f"/v1/parcels/FL/dixie/{parcel.parcel_id}/history")
    assert response.status_code == 403
    error = response.json()["error"]
    assert error["code"] == "FORBIDDEN"
    assert response.json()["detail"]["code"] == "TIER_LIMIT_EXCEEDED"  # as the original said
    assert error["details"] == {
        "tier": "anonymous",
        "feature": "history",
        "allowed_by_tier": "free",
        "allowed_daily_limit": get_tier("free").daily_limit(Feature.HISTORY),
    }
    assert rate_limit_hits("anonymous", "tier") == hits_before + 1


def test_successful_answers_and_not_found_lookups_count_against_the_quota(
    api_client: TestClient, db_session: Session
) -> None:
    headers, _ = headers_for(db_session, "free")
    [parcel] = add_parcels(db_session, [ParcelSpec(parcel_id="7-7-7")])
    assert api_client.get("/v1/parcels/FL/dixie/7-7-7", headers=headers).status_code == 200
    assert api_client.get("/v1/parcels/FL/dixie/8-8-8", headers=headers).status_code == 404
    assert api_client.get("/v1/search?limit=0", headers=headers).status_code == 422
    assert api_client.get("/v1/top-lists/nope", headers=headers).status_code == 404
    assert api_client.get("/v1/search", headers=headers).status_code == 200

    usage = {
        f["feature"]: f["used_today"]
        for f in api_client.get("/v1/usage", headers=headers).json()["features"]
    }
    # The 404 counts: with its "did you mean" it would otherwise make probing ids free.
    assert usage == {"search": 1, "detail": 2, "top_lists": 0, "history": 0}
    assert parcel.parcel_id == "7-7-7"


def test_quota_reservations_are_exact_under_concurrency(redis_client: redis.Redis) -> None:
    tier = Tier(name="tiny", per_minute=1, burst=1, daily={Feature.SEARCH: 5})
    counter = QuotaCounter(redis_client)

    def attempt(_: int) -> bool:
        try:
            counter.reserve("key:1", tier, Feature.SEARCH)
        except QuotaError as refused:  # anything else fails the test: it is no refusal
            assert refused.code == "TIER_LIMIT_EXCEEDED", refused
            return False
        return True

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(attempt, range(40)))
    assert sum(results) == 5
    assert counter.usage("key:1", tier)[0].used == 5


def test_usage_reports_tier_limits_and_what_remains(
    api_client: TestClient, db_session: Session
) -> None:
    headers, _ = headers_for(db_session, "starter")
    api_client.get("/v1/search", headers=headers)
    body = api_client.get("/v1/usage", headers=headers).json()
    starter = get_tier("starter")
    assert body["tier"] == "starter"
    assert body["api_key_prefix"].startswith("tlg_")
    assert body["rate_limit"] == {"per_minute": 60, "burst": 20, "remaining": 18}
    search = next(f for f in body["features"] if f["feature"] == "search")
    limit = starter.daily_limit(Feature.SEARCH)
    assert limit is not None
    assert search == {
        "feature": "search",
        "daily_limit": limit,
        "used_today": 1,
        "remaining_today": limit - 1,
    }
    assert datetime.fromisoformat(body["resets_at"]) == next_reset_at()


def test_without_redis_the_public_api_fails_closed_with_503(
    api_client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gateway_api import public_access
    from gateway_localstack.servers import find_free_port

    unreachable = redis.Redis(port=find_free_port(), socket_connect_timeout=0.2)
    monkeypatch.setattr(public_access, "get_rate_limiter", lambda: RateLimiter(unreachable))
    response = api_client.get("/v1/search")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "SERVICE_UNAVAILABLE"
    assert api_client.get("/health").status_code == 200
