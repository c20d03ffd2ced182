"""Two served apps on one Redis: one rate-limit count per key, and a Redis outage survived.

Both apps share the embedded store's data dir (so a key created through one is known to the
other) and one real redis-server, which the outage test kills and restarts on the same port.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack

import httpx
import pytest

from ragbridge.service.redis_connection import RedisBreaker
from ragbridge.settings import Settings
from tests.support.metrics import Scrape
from tests.support.redis import RedisForTests

pytestmark = pytest.mark.redis

ADMIN_KEY = "redis-admin-key"
KEY_NAME = "team"
REQUESTS_KEY = f"ragbridge:ratelimit:{{{KEY_NAME}}}:requests"


@pytest.fixture
def replicas(
    make_settings: Callable[..., Settings],
    serve_app: Callable[[Settings], AbstractContextManager[str]],
    redis_server: RedisForTests,
) -> Iterator[list[str]]:
    """Base URLs of two apps on one data dir and one Redis."""
    settings = make_settings(api_key=ADMIN_KEY, redis_url=redis_server.url)
    with ExitStack() as stack:
        yield [stack.enter_context(serve_app(settings)) for _ in range(2)]


def create_key(base_url: str, rpm: int) -> str:
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    created = httpx.post(f"{base_url}/v1/keys", json={"name": KEY_NAME, "rpm": rpm}, headers=admin)
    assert created.status_code == 201, created.text
    return str(created.json()["key"])


def statuses(base_url: str, key: str, n: int) -> list[int]:
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=base_url, headers=headers, timeout=30) as client:
        return [client.get("/v1/collections").status_code for _ in range(n)]


def test_a_key_has_one_count_across_replicas(
    replicas: list[str], redis_server: RedisForTests
) -> None:
    a, b = replicas
    key = create_key(a, rpm=4)
    assert statuses(a, key, 1) + statuses(b, key, 1) + statuses(a, key, 1) == [200] * 3
    assert statuses(b, key, 1) == [200]
    assert statuses(a, key, 1) == [429]
    assert statuses(b, key, 1) == [429]
    with redis_server.client() as plain:
        assert plain.zcard(REQUESTS_KEY) == 4
    assert Scrape(b).value("ragbridge_redis_up", component="ratelimit") == 1


def test_a_redis_outage_degrades_to_per_replica_limits_and_recovers(
    replicas: list[str], redis_server: RedisForTests, caplog: pytest.LogCaptureFixture
) -> None:
    a, b = replicas
    key = create_key(a, rpm=3)
    assert statuses(a, key, 1) == [200]
    redis_server.stop()
    with caplog.at_level(logging.WARNING, logger="ragbridge.service.redis_connection"):
        # Each replica now counts on its own, from zero: requests still succeed, limits hold.
        assert statuses(a, key, 4) == [200, 200, 200, 429]
        assert statuses(b, key, 4) == [200, 200, 200, 429]
        outage = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert len(outage) == 2  # one warning per replica, not one per request
        assert all("Redis unavailable for ratelimit" in m for m in outage)
        for url in (a, b):
            scrape = Scrape(url)
            assert scrape.value("ragbridge_redis_up", component="ratelimit") == 0
            assert scrape.value("ragbridge_redis_errors_total", component="ratelimit") >= 1

        redis_server.start()  # back on the same port, empty
        time.sleep(RedisBreaker("ratelimit").backoff + 0.2)
        assert statuses(a, key, 1) == [200]
    with redis_server.client() as plain:
        assert plain.zcard(REQUESTS_KEY) == 1  # counted in Redis again
    assert Scrape(a).value("ragbridge_redis_up", component="ratelimit") == 1
    assert any("Redis is back for ratelimit" in r.getMessage() for r in caplog.records)
