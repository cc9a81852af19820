"""Per-client token buckets in Redis, updated atomically by one Lua script.

A bucket holds up to ``burst`` tokens and refills at ``per_minute`` tokens a minute; each
request takes one. The script reads the clock from Redis (``TIME``), so every API process
agrees on it, and refills, takes and stores in one step, so concurrent requests never take
the same token twice.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import redis

from services.public.tiers import Tier

BUCKET_KEY_PREFIX = "public:bucket:"

# KEYS[1] bucket hash {tokens, ts}; ARGV: capacity, tokens per minute, cost.
# Returns {allowed 0/1, whole tokens left, ms until `cost` tokens are there, ms until full}.
TOKEN_BUCKET_LUA = """
local capacity = tonumber(ARGV[1])
local rate = tonumber(ARGV[2]) / 60000.0
local cost = tonumber(ARGV[3])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if tokens == nil or ts == nil then
  tokens = capacity
  ts = now
end
if now > ts then
  tokens = math.min(capacity, tokens + (now - ts) * rate)
  ts = now
end
local allowed = 0
if tokens >= cost then
  tokens = tokens - cost
  allowed = 1
end
local wait_ms = 0
if allowed == 0 then
  wait_ms = math.ceil((cost - tokens) / rate)
end
local full_ms = math.ceil((capacity - tokens) / rate)
redis.call('HSET', KEYS[1], 'tokens', string.format('%.6f', tokens), 'ts', ts)
redis.call('PEXPIRE', KEYS[1], full_ms + 1000)
return {allowed, math.floor(tokens), wait_ms, full_ms}
"""


@dataclass(frozen=True)
class BucketDecision:
    is_allowed: bool
    limit_per_minute: int
    burst: int
    remaining: int
    retry_after_s: int  # 0 when allowed
    reset_s: int  # until the bucket is full again


class RateLimiter:
    """Token buckets on one Redis client; the script is registered once per limiter."""

    def __init__(self, client: redis.Redis) -> None:
        self._script = client.register_script(TOKEN_BUCKET_LUA)

    def take(self, identity: str, tier: Tier, *, cost: int = 1) -> BucketDecision:
        allowed, remaining, wait_ms, full_ms = self._script(
            keys=[f"{BUCKET_KEY_PREFIX}{tier.name}:{identity}"],
            args=[tier.burst, tier.per_minute, cost],
        )
        return BucketDecision(
            is_allowed=bool(allowed),
            limit_per_minute=tier.per_minute,
            burst=tier.burst,
            remaining=int(remaining),
            retry_after_s=math.ceil(int(wait_ms) / 1000),
            reset_s=math.ceil(int(full_ms) / 1000),
        )
