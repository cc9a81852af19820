"""The fleet's start budget in Redis: strict spacing per scope, lowered when a site pushes back.

One Lua script decides a start for every scope it must fit (platform, county) at once, on
Redis's clock, so every API process and Celery child shares one budget and two starts never
take the same slot. A scope with ``per_minute`` N at factor f starts at most one task every
60 / (N·f) seconds after its last start, with no burst: a county site sees an even pace,
never a flood after a quiet spell.

Pushback (a worker reports ``rate_limited``/``blocked``, or a Retry-After) deepens the
scope's cut by one level (the rate halves) and restarts its cool-down; every cool-down
without pushback lifts one level. The factor is computed from the stored level and time of
the last cut when read, so nothing has to run to restore a rate.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import redis
from redis.exceptions import RedisError

from services.dispatch.rate_limits import Scope, ScopeLimit

logger = logging.getLogger(__name__)
KEY_PREFIX: Final = "politeness:scope:"
# 1/64 of the configured rate at most: deep enough for a site that keeps blocking, and it
# still comes back within six cool-downs.
MAX_CUT_LEVEL: Final = 6
# Reports of one incident arrive together (every task in flight is refused at once): within
# this share of a cool-down after a cut they restart the cool-down without cutting again.
REPEAT_CUT_SHARE: Final = 0.25

_LEVEL_LUA = """
local function clock_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function cut_level(level, cut_at, now, cooldown)
  level = tonumber(level)
  cut_at = tonumber(cut_at)
  if level == nil or cut_at == nil then return 0 end
  return math.max(0, level - math.floor((now - cut_at) / cooldown))
end
"""

# KEYS: one hash per scope {last, level, cut_at, paused_until}; ARGV: cool-down ms, then
# per_minute per key. The spacing is applied from the last start at the rate in force now, so
# a changed limit or a lifted cut counts at once. Returns {1, 0} and records the start in
# every scope, or {0, ms until every scope has a slot}.
TAKE_START_LUA = (
    _LEVEL_LUA
    + """
local now = clock_ms()
local cooldown = tonumber(ARGV[1])
local wait = 0
local keep = {}
for i, key in ipairs(KEYS) do
  local state = redis.call('HMGET', key, 'last', 'level', 'cut_at', 'paused_until')
  local level = cut_level(state[2], state[3], now, cooldown)
  local interval = 60000 * (2 ^ level) / tonumber(ARGV[i + 1])
  local next_at = math.max((tonumber(state[1]) or 0) + interval, tonumber(state[4]) or 0)
  if next_at - now > wait then wait = next_at - now end
  keep[i] = math.max(interval, level * cooldown)
end
if wait > 0 then return {0, math.ceil(wait)} end
for i, key in ipairs(KEYS) do
  redis.call('HSET', key, 'last', now)
  local ttl = math.ceil(keep[i]) + 60000
  redis.call('PEXPIRE', key, math.max(ttl, redis.call('PTTL', key)))
end
return {1, 0}
"""
)

# KEYS[1]: the scope's hash; ARGV: cool-down ms, max level, repeat share, pause ms.
# Returns the level now in force.
REPORT_PUSHBACK_LUA = (
    _LEVEL_LUA
    + """
local now = clock_ms()
local cooldown = tonumber(ARGV[1])
local state = redis.call('HMGET', KEYS[1], 'level', 'cut_at', 'paused_until')
local level = cut_level(state[1], state[2], now, cooldown)
local last_cut = tonumber(state[2])
if level == 0 or last_cut == nil or now - last_cut >= cooldown * tonumber(ARGV[3]) then
  level = math.min(level + 1, tonumber(ARGV[2]))
end
redis.call('HSET', KEYS[1], 'level', level, 'cut_at', now)
local pause = tonumber(ARGV[4])
if pause > 0 and now + pause > (tonumber(state[3]) or 0) then
  redis.call('HSET', KEYS[1], 'paused_until', now + pause)
end
-- Never shorter than it was: the key also holds the last start, spaced by the interval.
local ttl = math.ceil(level * cooldown + pause) + 60000
redis.call('PEXPIRE', KEYS[1], math.max(ttl, redis.call('PTTL', KEYS[1])))
return level
"""
)


def scope_key(scope: Scope) -> str:
    return f"{KEY_PREFIX}{scope.platform}/{scope.county}"


@dataclass(frozen=True)
class EffectiveRate:
    limit: ScopeLimit
    cut_level: int

    @property
    def per_minute(self) -> float:
        return self.limit.per_minute / float(2**self.cut_level)


class StartBudget:
    """The budget on one Redis client (the cache Redis, shared by every process)."""

    def __init__(self, client: redis.Redis, *, cooldown_s: float) -> None:
        self._client = client
        self._cooldown_ms = max(1, round(cooldown_s * 1000))
        self._take = client.register_script(TAKE_START_LUA)
        self._report = client.register_script(REPORT_PUSHBACK_LUA)

    def take_start(self, limits: Sequence[ScopeLimit]) -> float:
        """0 when a start fits every limit (its slots are taken); else seconds to wait.

        An unreachable Redis lets the start through: the broker usually shares it, so the
        fleet is stalled anyway, and a stalled budget would stop every limited platform.
        """
        if not limits:
            return 0.0
        try:
            is_granted, wait_ms = self._take(
                keys=[scope_key(limit.scope) for limit in limits],
                args=[self._cooldown_ms, *(limit.per_minute for limit in limits)],
            )
        except RedisError as exc:
            logger.warning("start budget unreachable, start allowed: %s", exc)
            return 0.0
        return 0.0 if is_granted else int(wait_ms) / 1000

    def report_pushback(self, limit: ScopeLimit, *, pause_s: float = 0.0) -> int:
        """Lower the scope's rate (and pause it ``pause_s``); returns the cut level."""
        level = self._report(
            keys=[scope_key(limit.scope)],
            args=[self._cooldown_ms, MAX_CUT_LEVEL, REPEAT_CUT_SHARE, math.ceil(pause_s * 1000)],
        )
        return int(level)

    def read_rates(self, limits: Sequence[ScopeLimit]) -> list[EffectiveRate]:
        """The rate each limit is held to now (its cut level read as the script would)."""
        if not limits:
            return []
        seconds, micros = self._client.time()
        now_ms = seconds * 1000 + micros // 1000
        with self._client.pipeline(transaction=False) as pipe:
            for limit in limits:
                pipe.hmget(scope_key(limit.scope), "level", "cut_at")
            states = pipe.execute()
        return [
            EffectiveRate(limit, self._level_at(level, cut_at, now_ms))
            for limit, (level, cut_at) in zip(limits, states, strict=True)
        ]

    def _level_at(self, level: bytes | None, cut_at: bytes | None, now_ms: int) -> int:
        if level is None or cut_at is None:
            return 0
        lifted = int((now_ms - float(cut_at)) // self._cooldown_ms)
        return max(0, int(level) - lifted)
