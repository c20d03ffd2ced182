"""The Redis outage breaker: in-process during an outage, one warning, a retry after the backoff."""

from __future__ import annotations

import logging

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from ragbridge.service.redis_connection import RedisBreaker
from ragbridge.service.telemetry import Metrics

pytestmark = pytest.mark.anyio


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class FlakyRedis:
    """Stands in for one Redis call: fails while `down`, and counts how often it was tried."""

    def __init__(self) -> None:
        self.down = False
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.down:
            raise RedisConnectionError("Connection refused")
        return "redis"


async def in_process() -> str:
    return "in-process"


def sample(metrics: Metrics, name: str) -> float | None:
    return metrics.registry.get_sample_value(name, {"component": "cache"})


async def test_an_outage_degrades_warns_once_and_recovers_after_the_backoff(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock, metrics, redis = Clock(), Metrics(), FlakyRedis()
    breaker = RedisBreaker("cache", metrics, backoff=5.0, clock=clock)
    assert await breaker.call(redis, in_process) == "redis"
    assert sample(metrics, "ragbridge_redis_up") == 1

    redis.down = True
    with caplog.at_level(logging.WARNING, logger="ragbridge.service.redis_connection"):
        answers = [await breaker.call(redis, in_process) for _ in range(10)]
        assert answers == ["in-process"] * 10
        assert redis.calls == 2  # the failed call; the rest skip Redis during the backoff
        clock.now += 5.0
        assert await breaker.call(redis, in_process) == "in-process"  # probe, still down
        assert redis.calls == 3
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "Redis unavailable for cache" in warnings[0].getMessage()
    assert sample(metrics, "ragbridge_redis_errors_total") == 2
    assert sample(metrics, "ragbridge_redis_up") == 0
    assert not breaker.up

    redis.down = False
    clock.now += 4.9
    assert await breaker.call(redis, in_process) == "in-process"  # not due yet
    clock.now += 0.1
    assert await breaker.call(redis, in_process) == "redis"
    assert breaker.up
    assert sample(metrics, "ragbridge_redis_up") == 1
    assert "Redis is back for cache" in caplog.records[-1].getMessage()


async def test_only_one_call_probes_while_redis_is_down() -> None:
    clock, redis = Clock(), FlakyRedis()
    breaker = RedisBreaker("ratelimit", None, backoff=1.0, clock=clock)
    redis.down = True
    await breaker.call(redis, in_process)
    clock.now += 1.0

    async def slow_probe() -> str:
        # While this probe is in flight, other calls must not hit Redis too.
        assert await breaker.call(redis, in_process) == "in-process"
        return await redis()

    assert await breaker.call(slow_probe, in_process) == "in-process"
    assert redis.calls == 2  # the first failure and the probe itself
