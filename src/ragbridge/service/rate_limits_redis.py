"""Rate limits shared by every replica through Redis, degrading to in-process ones in an outage.
The same sliding-window log as `InProcessRateLimiter`, on Redis's clock, one Lua script per call
(atomic across replicas; docs/scaling.md)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ragbridge.service.rate_limits import (
    Decision,
    InProcessRateLimiter,
    LimitKind,
    Limits,
    RateLimiter,
)
from ragbridge.service.telemetry import Metrics
from ragbridge.settings import Settings

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from ragbridge.service.redis_connection import RedisBreaker

_PREFIX = "ragbridge:ratelimit"

# Shared prologue: the server's time, and both windows with their expired entries dropped.
# A spend is stored as the member "<id>:<tokens>" so one sorted set holds time and amount.
_PROLOGUE = """
local requests, spends = KEYS[1], KEYS[2]
local window = tonumber(ARGV[1])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
redis.call('ZREMRANGEBYSCORE', requests, '-inf', now - window)
redis.call('ZREMRANGEBYSCORE', spends, '-inf', now - window)
local ttl = math.ceil(window * 1000) + 1000
local function amount(member) return tonumber(string.match(member, ':(%d+)$')) end
"""

# ARGV: window, rpm (-1 = none), tpm (-1 = none), tokens, request id.
# Returns {1} when allowed, else {0, seconds until retry, limit}.
_ACQUIRE = (
    _PROLOGUE
    + """
local rpm, tpm, tokens, id = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5]
local count = redis.call('ZCARD', requests)
if rpm >= 0 and count >= rpm then
  local oldest = redis.call('ZRANGE', requests, count - rpm, count - rpm, 'WITHSCORES')
  local frees = oldest[2] and tonumber(oldest[2]) or now
  return {0, tostring(frees + window - now), 'requests'}
end
local cost = tokens
if tpm >= 0 and cost > tpm then cost = tpm end
if tpm >= 0 and cost > 0 then
  local entries = redis.call('ZRANGE', spends, 0, -1, 'WITHSCORES')
  local used = 0
  for i = 1, #entries, 2 do used = used + amount(entries[i]) end
  if used + cost > tpm then
    for i = 1, #entries, 2 do
      used = used - amount(entries[i])
      if used + cost <= tpm then
        return {0, tostring(tonumber(entries[i + 1]) + window - now), 'tokens'}
      end
    end
  end
end
redis.call('ZADD', requests, now, id)
redis.call('PEXPIRE', requests, ttl)
if tokens > 0 then
  redis.call('ZADD', spends, now, id .. ':' .. tokens)
  redis.call('PEXPIRE', spends, ttl)
end
return {1}
"""
)

# ARGV: window, tokens, spend id.
_ADD_TOKENS = (
    _PROLOGUE
    + """
redis.call('ZADD', spends, now, ARGV[3] .. ':' .. ARGV[2])
redis.call('PEXPIRE', spends, ttl)
return 1
"""
)


class RedisRateLimiter:
    """`RateLimiter` on Redis: one count per key for all replicas. Raises on Redis errors."""

    def __init__(self, client: Redis, *, window: float = 60.0) -> None:
        self.client = client
        self.window = window
        self._acquire = client.register_script(_ACQUIRE)
        self._add_tokens = client.register_script(_ADD_TOKENS)

    def keys_for(self, key: str) -> list[str]:
        """The Redis keys holding `key`'s requests and spends (one hash slot, for Cluster)."""
        return [f"{_PREFIX}:{{{key}}}:requests", f"{_PREFIX}:{{{key}}}:tokens"]

    async def acquire(self, key: str, limits: Limits, tokens: int = 0) -> Decision:
        if limits.unlimited:
            return Decision(True)
        rpm = -1 if limits.rpm is None else limits.rpm
        tpm = -1 if limits.tpm is None else limits.tpm
        args: list[float | str] = [self.window, rpm, tpm, max(0, tokens), uuid.uuid4().hex]
        reply = await self._acquire(keys=self.keys_for(key), args=args)
        if int(reply[0]) == 1:
            return Decision(True)
        limit: LimitKind = "tokens" if _text(reply[2]) == "tokens" else "requests"
        return Decision(False, max(0.0, float(_text(reply[1]))), limit)

    async def add_tokens(self, key: str, tokens: int) -> None:
        if tokens <= 0:
            return
        args: list[float | str] = [self.window, tokens, uuid.uuid4().hex]
        await self._add_tokens(keys=self.keys_for(key), args=args)

    async def close(self) -> None:
        await self.client.aclose()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


@dataclass(eq=False)
class SharedRateLimiter:
    """Redis limits while Redis works; per-replica in-process limits during an outage, then back."""

    primary: RedisRateLimiter
    fallback: InProcessRateLimiter
    breaker: RedisBreaker

    async def acquire(self, key: str, limits: Limits, tokens: int = 0) -> Decision:
        return await self.breaker.call(
            lambda: self.primary.acquire(key, limits, tokens),
            lambda: self.fallback.acquire(key, limits, tokens),
        )

    async def add_tokens(self, key: str, tokens: int) -> None:
        await self.breaker.call(
            lambda: self.primary.add_tokens(key, tokens),
            lambda: self.fallback.add_tokens(key, tokens),
        )

    async def close(self) -> None:
        try:
            await self.primary.close()
        finally:
            await self.fallback.close()


def create_rate_limiter(settings: Settings, metrics: Metrics | None = None) -> RateLimiter:
    """In-process limits, or Redis limits shared by replicas (falling back) with a redis_url."""
    in_process = InProcessRateLimiter(window=settings.rate_limit_window)
    if not settings.redis_url:
        return in_process
    from ragbridge.service.redis_connection import RedisBreaker, open_redis

    on_redis = RedisRateLimiter(open_redis(settings.redis_url), window=settings.rate_limit_window)
    return SharedRateLimiter(on_redis, in_process, RedisBreaker("ratelimit", metrics))
