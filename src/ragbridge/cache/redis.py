"""Caches shared by every replica through Redis, degrading to the in-process cache in an outage."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ragbridge.cache.base import Cache

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from ragbridge.service.redis_connection import RedisBreaker


@dataclass(eq=False)
class RedisCache:
    """Bytes in Redis with a TTL (`SET ... PX`); raises on Redis errors (see `SharedCache`)."""

    client: Redis

    async def get(self, key: str) -> bytes | None:
        value = await self.client.get(key)
        return value.encode() if isinstance(value, str) else value

    async def set(self, key: str, value: bytes, ttl: float) -> None:
        if ttl <= 0:
            return
        await self.client.set(key, value, px=max(1, round(ttl * 1000)))

    async def close(self) -> None:
        await self.client.aclose()


@dataclass(eq=False)
class SharedCache:
    """`primary` (Redis) while it works; `fallback` (in-process) during an outage, then back."""

    primary: RedisCache
    fallback: Cache
    breaker: RedisBreaker

    async def get(self, key: str) -> bytes | None:
        return await self.breaker.call(
            lambda: self.primary.get(key), lambda: self.fallback.get(key)
        )

    async def set(self, key: str, value: bytes, ttl: float) -> None:
        await self.breaker.call(
            lambda: self.primary.set(key, value, ttl), lambda: self.fallback.set(key, value, ttl)
        )

    async def close(self) -> None:
        try:
            await self.primary.close()
        finally:
            await self.fallback.close()
