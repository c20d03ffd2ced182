"""The Redis rate limiter on a real redis-server: the in-process limiter's rules, one shared count.

The same scenarios run against `InProcessRateLimiter` and `RedisRateLimiter` (with a short real
window, since Redis keeps its own clock), so the shared limiter cannot drift from the local one.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest
from redis.asyncio import Redis

from ragbridge.service.rate_limits import InProcessRateLimiter, Limits, RateLimiter
from ragbridge.service.rate_limits_redis import (
    RedisRateLimiter,
    SharedRateLimiter,
    create_rate_limiter,
)
from ragbridge.service.redis_connection import open_redis
from ragbridge.settings import Settings
from tests.support.redis import RedisForTests

pytestmark = [pytest.mark.anyio, pytest.mark.redis]

WINDOW = 0.6


@pytest.fixture(params=["in-process", "redis"])
async def limiter(request: pytest.FixtureRequest) -> AsyncIterator[RateLimiter]:
    if request.param == "in-process":
        yield InProcessRateLimiter(window=WINDOW)
        return
    server: RedisForTests = request.getfixturevalue("redis_server")
    on_redis = RedisRateLimiter(open_redis(server.url), window=WINDOW)
    try:
        yield on_redis
    finally:
        await on_redis.close()


async def test_rpm_refuses_without_counting_then_recovers(limiter: RateLimiter) -> None:
    limits = Limits(rpm=3)
    assert [(await limiter.acquire("k", limits)).allowed for _ in range(3)] == [True] * 3
    refused = await limiter.acquire("k", limits)
    assert not refused.allowed
    assert refused.limit == "requests"
    assert 0 < refused.retry_after <= WINDOW
    assert not (await limiter.acquire("k", limits)).allowed  # refusals are not counted
    assert (await limiter.acquire("other", limits)).allowed  # keys are separate
    await asyncio.sleep(refused.retry_after + 0.05)
    assert (await limiter.acquire("k", limits)).allowed


async def test_token_budget_reservations_and_late_charges(limiter: RateLimiter) -> None:
    limits = Limits(tpm=100)
    assert (await limiter.acquire("k", limits, tokens=60)).allowed
    too_many = await limiter.acquire("k", limits, tokens=50)
    assert (too_many.allowed, too_many.limit) == (False, "tokens")
    assert 0 < too_many.retry_after <= WINDOW
    assert (await limiter.acquire("k", limits, tokens=40)).allowed
    assert (await limiter.acquire("k", limits, tokens=0)).allowed  # spends nothing: no check
    await limiter.add_tokens("k", 30)  # the answer's tokens, learned afterwards
    assert not (await limiter.acquire("k", limits, tokens=1)).allowed


async def test_a_request_larger_than_the_budget_runs_alone(limiter: RateLimiter) -> None:
    limits = Limits(rpm=10, tpm=100)
    assert (await limiter.acquire("k", limits, tokens=500)).allowed
    after = await limiter.acquire("k", limits, tokens=1)
    assert (after.allowed, after.limit) == (False, "tokens")
    assert (await limiter.acquire("k", Limits())).allowed  # unlimited keys always pass


async def test_two_replicas_share_one_count_atomically(redis_server: RedisForTests) -> None:
    # 40 requests at once open up to 40 connections: without the serving client's 0.5 s connect
    # timeout, so that a loaded test machine tests atomicity, not connect latency.
    replicas = [RedisRateLimiter(Redis.from_url(redis_server.url), window=30) for _ in range(2)]
    limits = Limits(rpm=15)
    try:
        decisions = await asyncio.gather(
            *(replicas[i % 2].acquire("shared", limits) for i in range(40))
        )
        assert sum(d.allowed for d in decisions) == 15
        requests_key = replicas[0].keys_for("shared")[0]
        with redis_server.client() as plain:
            assert plain.zcard(requests_key) == 15
            assert 0 < plain.pttl(requests_key) <= 31_000  # expires with its window
    finally:
        for replica in replicas:
            await replica.close()


async def test_the_factory_picks_redis_only_with_a_url(
    make_settings: Callable[..., Settings], redis_server: RedisForTests
) -> None:
    assert isinstance(create_rate_limiter(make_settings()), InProcessRateLimiter)
    shared = create_rate_limiter(make_settings(redis_url=redis_server.url, rate_limit_window=7))
    assert isinstance(shared, SharedRateLimiter)
    assert shared.primary.window == shared.fallback.window == 7
    await shared.close()
