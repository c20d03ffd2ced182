import asyncio

from ragbridge.cache.base import Cache, cache_key
from ragbridge.cache.memory import MemoryCache


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_entries_expire_and_least_recently_used_is_evicted() -> None:
    async def scenario() -> None:
        clock = FakeClock()
        cache = MemoryCache(max_items=2, clock=clock)
        assert isinstance(cache, Cache)
        await cache.set("a", b"1", ttl=10)
        await cache.set("b", b"2", ttl=10)
        assert await cache.get("a") == b"1"  # a is now most recently used
        await cache.set("c", b"3", ttl=10)
        assert await cache.get("b") is None
        assert await cache.get("a") == b"1"
        clock.now = 11
        assert await cache.get("a") is None
        assert await cache.get("c") is None

    asyncio.run(scenario())


def test_cache_key_is_stable_and_namespaced() -> None:
    assert cache_key("r", "kb", "질문", 5) == cache_key("r", "kb", "질문", 5)
    assert cache_key("r", "kb", "q") != cache_key("r", "kb", "q2")
    assert cache_key("r", "x").startswith("ragbridge:r:")
