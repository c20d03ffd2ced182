"""The shared cache on a real redis-server: round trip, TTL, sharing, and an outage survived."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import numpy as np
import pytest

from ragbridge.cache import cache_key, create_cache
from ragbridge.cache.embeddings import SharedQueryEmbeddings
from ragbridge.cache.memory import MemoryCache
from ragbridge.cache.redis import RedisCache, SharedCache
from ragbridge.embeddings.remote import RemoteEmbedder, RemoteEmbeddingConfig
from ragbridge.service.redis_connection import SOCKET_TIMEOUT, RedisBreaker, open_redis
from ragbridge.service.telemetry import Metrics
from ragbridge.settings import Settings
from tests.support.redis import RedisForTests
from tests.support.upstream import ScriptedUpstream

pytestmark = [pytest.mark.anyio, pytest.mark.redis]


async def test_round_trip_and_ttl(redis_server: RedisForTests) -> None:
    cache = RedisCache(open_redis(redis_server.url))
    key = cache_key("retrieval", "handbook", "연차 휴가는 며칠인가요?")
    try:
        assert await cache.get(key) is None
        await cache.set(key, "답변 bytes".encode(), ttl=0.3)
        assert await cache.get(key) == "답변 bytes".encode()
        with redis_server.client() as plain:
            assert 0 < plain.pttl(key) <= 300  # stored in Redis itself, with its expiry
        await cache.set(cache_key("retrieval", "never"), b"x", ttl=0)  # ttl 0: not cached
        await asyncio.sleep(0.4)
        assert await cache.get(key) is None
        with redis_server.client() as plain:
            assert plain.dbsize() == 0
    finally:
        await cache.close()


async def test_two_replicas_share_entries(
    redis_server: RedisForTests, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(redis_url=redis_server.url)
    replica_a, replica_b = create_cache(settings), create_cache(settings)
    assert isinstance(replica_a, SharedCache)
    try:
        await replica_a.set("ragbridge:test:shared", b"from a", ttl=30)
        assert await replica_b.get("ragbridge:test:shared") == b"from a"
    finally:
        await replica_a.close()
        await replica_b.close()
    assert isinstance(create_cache(make_settings()), MemoryCache)  # no redis_url: in-process


async def test_an_outage_serves_in_process_then_goes_back_to_redis(
    redis_server: RedisForTests, caplog: pytest.LogCaptureFixture
) -> None:
    metrics = Metrics()
    breaker = RedisBreaker("cache", metrics, backoff=0.2)
    cache = SharedCache(RedisCache(open_redis(redis_server.url)), MemoryCache(100), breaker)

    def metric(name: str) -> float | None:
        return metrics.registry.get_sample_value(name, {"component": "cache"})

    try:
        await cache.set("ragbridge:test:before", b"1", ttl=30)
        redis_server.stop()
        with caplog.at_level(logging.WARNING, logger="ragbridge.service.redis_connection"):
            assert await cache.get("ragbridge:test:before") is None  # a miss, not an error
            for i in range(20):
                await cache.set(f"ragbridge:test:during{i}", b"2", ttl=30)
                assert await cache.get(f"ragbridge:test:during{i}") == b"2"  # in-process
            outage_warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
            assert len(outage_warnings) == 1
            assert "Redis unavailable for cache" in outage_warnings[0].getMessage()
            assert (metric("ragbridge_redis_errors_total") or 0) >= 1
            assert metric("ragbridge_redis_up") == 0

            redis_server.start()  # same port, empty
            await asyncio.sleep(0.25)  # past the backoff: the next call probes Redis
            await cache.set("ragbridge:test:after", b"3", ttl=30)
        with redis_server.client() as plain:
            assert plain.get("ragbridge:test:after") == b"3"
            assert plain.get("ragbridge:test:during0") is None  # outage entries stayed local
        assert metric("ragbridge_redis_up") == 1
        assert "Redis is back for cache" in caplog.records[-1].getMessage()
    finally:
        await cache.close()


async def test_a_hung_redis_costs_one_short_timeout_then_nothing(
    redis_server: RedisForTests,
) -> None:
    breaker = RedisBreaker("cache", None, backoff=30)
    cache = SharedCache(RedisCache(open_redis(redis_server.url)), MemoryCache(100), breaker)
    try:
        await cache.set("ragbridge:test:k", b"v", ttl=30)
        redis_server.pause()
        started = time.monotonic()
        assert await cache.get("ragbridge:test:k") is None  # waited for the socket timeout
        first = time.monotonic() - started
        started = time.monotonic()
        for _ in range(100):
            await cache.get("ragbridge:test:k")  # the breaker is open: not even a connect
        rest = time.monotonic() - started
        assert SOCKET_TIMEOUT * 0.9 <= first < SOCKET_TIMEOUT * 3
        assert rest < 0.1
    finally:
        redis_server.resume()
        await cache.close()


async def test_a_query_embedded_by_one_replica_is_read_by_the_other(
    redis_server: RedisForTests,
    upstream: ScriptedUpstream,
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(
        redis_url=redis_server.url,
        embedding_base_url=upstream.url,
        embedding_model="text-embedding-3-small",
    )
    metrics = Metrics()
    caches = [create_cache(settings) for _ in range(2)]
    replicas = [
        SharedQueryEmbeddings(
            RemoteEmbedder(RemoteEmbeddingConfig.from_settings(settings)), c, 30, metrics
        )
        for c in caches
    ]
    try:
        first = await replicas[0].embed_query("How many vacation days?")
        second = await replicas[1].embed_query("How many vacation days?")
        calls = [r for r in upstream.requests if r.path == "/v1/embeddings"]
        assert len(calls) == 1  # the second replica did not ask the model again
        np.testing.assert_array_equal(first, second)
        assert second.dtype == np.float32 and second.shape == first.shape
        hits = metrics.registry.get_sample_value(
            "ragbridge_cache_lookups_total", {"cache": "query_embedding", "result": "hit"}
        )
        assert hits == 1
    finally:
        for replica, cache in zip(replicas, caches, strict=True):
            await replica.close()
            await cache.close()
