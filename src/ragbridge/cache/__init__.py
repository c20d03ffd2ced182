"""Caches: in-process LRU with TTL, or Redis shared across replicas."""

from __future__ import annotations

from ragbridge.cache.base import Cache, cache_key
from ragbridge.cache.memory import MemoryCache
from ragbridge.service.telemetry import Metrics
from ragbridge.settings import Settings

__all__ = ["Cache", "cache_key", "create_cache"]


def create_cache(settings: Settings, metrics: Metrics | None = None) -> Cache:
    """The in-process cache, or Redis shared by replicas (falling back to it) with a redis_url."""
    memory = MemoryCache(settings.cache_max_items, max_bytes=settings.cache_max_bytes)
    if not settings.redis_url:
        return memory
    from ragbridge.cache.redis import RedisCache, SharedCache
    from ragbridge.service.redis_connection import RedisBreaker, open_redis

    breaker = RedisBreaker("cache", metrics)
    return SharedCache(RedisCache(open_redis(settings.redis_url)), memory, breaker)
