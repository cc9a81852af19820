"""Access control for ``/v1``: who is calling (API key or client IP), their token bucket,
their daily quotas, and the ``X-RateLimit-*`` headers on every ``/v1`` response.

Headers: ``X-RateLimit-Limit`` is the tier's tokens per minute, ``X-RateLimit-Burst`` the
bucket size, ``X-RateLimit-Remaining`` the whole tokens left after this call and
``X-RateLimit-Reset`` the seconds until the bucket is full again; a 429 adds ``Retry-After``
(seconds until the next token). A request with an unknown or revoked key is charged to its
IP's anonymous bucket before the 401, so guessing keys is rate limited too.
``/health`` and ``/metrics`` never pass through here, so they are never limited.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Annotated, Any

import redis
from fastapi import Depends, Header, Request, Security
from fastapi.security import HTTPAuthorizationCredentials
from prometheus_client import Counter
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from db.models import ApiKey
from gateway_api.api_docs import PUBLIC_API_KEY, PUBLIC_BEARER
from gateway_api.deps import PublicSessionDep
from gateway_api.schemas import Text
from services.cache_redis import CACHE_REDIS_TIMEOUT_S, cache_redis
from services.errors import Forbidden, NotFound, RateLimited, ServiceUnavailable, Unauthorized
from services.public.api_keys import authenticate_api_key
from services.public.client_address import client_identity
from services.public.quotas import QuotaCounter, QuotaError
from services.public.rate_limits import BucketDecision, RateLimiter
from services.public.search_filters import invalid_parameter
from services.public.tiers import ANONYMOUS_TIER, Feature, Tier, get_tier
from settings import get_settings

RATE_LIMIT_HITS = Counter(
    "gateway_rate_limit_hits_total",
    "Public API calls refused by a limit (rate: token bucket, quota: daily quota used up, "
    "tier: feature not in the tier)",
    ["tier", "limit"],
)
PUBLIC_REQUESTS = Counter(
    "gateway_public_requests_total", "Public API calls by the caller's tier", ["tier"]
)
_STATE_KEY = "public_rate_limit"


@dataclass(frozen=True)
class PublicClient:
    # "key:<id>", "ip:<v4 address>" or "ip:<v6 /64>": what buckets and quotas count by
    identity: str
    tier: Tier
    api_key: ApiKey | None


@lru_cache(maxsize=1)
def get_redis() -> redis.Redis:
    url = get_settings().rate_limit_redis_url
    if url is None:
        return cache_redis()
    return redis.Redis.from_url(
        url, socket_timeout=CACHE_REDIS_TIMEOUT_S, socket_connect_timeout=CACHE_REDIS_TIMEOUT_S
    )


@lru_cache(maxsize=1)
def get_rate_limiter() -> RateLimiter:
    return RateLimiter(get_redis())


@lru_cache(maxsize=1)
def get_quota_counter() -> QuotaCounter:
    return QuotaCounter(get_redis())


def _take_token(request: Request, identity: str, tier: Tier) -> None:
    PUBLIC_REQUESTS.labels(tier.name).inc()
    try:
        decision = get_rate_limiter().take(identity, tier)
    except redis.RedisError as exc:
        # Fail closed: without the limiter there is no limit to enforce.
        raise ServiceUnavailable("rate limiting is unavailable; retry shortly") from exc
    request.state.public_rate_limit = decision
    if not decision.is_allowed:
        RATE_LIMIT_HITS.labels(tier.name, "rate").inc()
        error = RateLimited(
            f"rate limit of tier {tier.name!r} ({tier.per_minute}/min, burst {tier.burst}) "
            f"reached; retry in {decision.retry_after_s} s",
            details={"tier": tier.name, "retry_after_s": decision.retry_after_s},
        )
        error.headers = {"Retry-After": str(decision.retry_after_s)}  # type: ignore[attr-defined]
        raise error


def presented_api_key(x_api_key: str | None, authorization: str | None) -> str | None:
    """The key from ``X-API-Key`` or ``Authorization: Bearer <key>`` (the original's header);
    another scheme is not a key. Two different keys are refused rather than one picked."""
    bearer = None
    if authorization:
        scheme, _, credentials = authorization.strip().partition(" ")
        if scheme.lower() == "bearer" and credentials.strip():
            bearer = credentials.strip()
    if x_api_key and bearer and x_api_key != bearer:
        raise invalid_parameter(
            "Authorization", "carries another key than X-API-Key; send the key once"
        )
    return x_api_key or bearer


def require_public_client(
    request: Request,
    session: PublicSessionDep,
    # The two ways to send the key, as security schemes of the OpenAPI (the Authorize button
    # of /docs); the headers themselves are read and length-checked below.
    _key_scheme: Annotated[str | None, Security(PUBLIC_API_KEY)],
    _bearer_scheme: Annotated[HTTPAuthorizationCredentials | None, Security(PUBLIC_BEARER)],
    x_api_key: Annotated[Text | None, Header(max_length=256, include_in_schema=False)] = None,
    authorization: Annotated[Text | None, Header(max_length=300, include_in_schema=False)] = None,
) -> PublicClient:
    anonymous = client_identity(
        request.client.host if request.client else None,
        request.headers.get("x-forwarded-for"),
        get_settings().trusted_proxy_networks,
    )
    key = presented_api_key(x_api_key, authorization)
    if not key:
        client = PublicClient(anonymous, get_tier(ANONYMOUS_TIER), None)
        _take_token(request, client.identity, client.tier)
        return client
    try:
        record = authenticate_api_key(
            session, key, touch_interval_s=get_settings().public_key_touch_interval_s
        )
    except Unauthorized:
        # A bad key costs the caller's IP an anonymous token: key guessing is rate limited.
        _take_token(request, anonymous, get_tier(ANONYMOUS_TIER))
        raise
    client = PublicClient(f"key:{record.id}", get_tier(record.tier), record)
    _take_token(request, client.identity, client.tier)
    return client


PublicClientDep = Annotated[PublicClient, Depends(require_public_client)]


def quota_for(feature: Feature) -> Callable[..., Iterator[None]]:
    """A dependency taking one unit of today's ``feature`` quota, given back if the call fails
    (except for a 404: its "did you mean" answer would otherwise make probing ids free)."""

    def use_quota(client: PublicClientDep) -> Iterator[None]:
        counter = get_quota_counter()
        try:
            reservation = counter.reserve(client.identity, client.tier, feature)
        except redis.RedisError as exc:
            raise ServiceUnavailable("quota accounting is unavailable; retry shortly") from exc
        except Forbidden as exc:
            limit = "quota" if isinstance(exc, QuotaError) else "tier"
            RATE_LIMIT_HITS.labels(client.tier.name, limit).inc()
            raise
        try:
            yield
        except NotFound:
            raise
        except BaseException:
            counter.refund(reservation)
            raise

    return use_quota


def quota_dependency(feature: Feature) -> Any:
    return Depends(quota_for(feature), scope="function")


def allow_query_parameters(*allowed: str) -> Any:
    """A dependency refusing (422) any query parameter not in ``allowed``."""

    def check_query_parameters(request: Request) -> None:
        for name in request.query_params:
            if name not in allowed:
                raise invalid_parameter(name, "unknown parameter")

    return Depends(check_query_parameters)


def rate_limit_headers(decision: BucketDecision) -> list[tuple[bytes, bytes]]:
    values = {
        "X-RateLimit-Limit": decision.limit_per_minute,
        "X-RateLimit-Remaining": decision.remaining,
        "X-RateLimit-Reset": decision.reset_s,
        "X-RateLimit-Burst": decision.burst,
    }
    return [(name.encode(), str(value).encode()) for name, value in values.items()]


class RateLimitHeadersMiddleware:
    """Copies the bucket state a ``/v1`` dependency recorded onto the response, errors included."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/v1"):
            await self.app(scope, receive, send)
            return
        state: dict[str, Any] = scope.setdefault("state", {})

        async def send_with_headers(message: Message) -> None:
            decision = state.get(_STATE_KEY)
            if message["type"] == "http.response.start" and decision is not None:
                message["headers"] = [*message.get("headers", []), *rate_limit_headers(decision)]
            await send(message)

        await self.app(scope, receive, send_with_headers)
