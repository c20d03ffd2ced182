"""Redis for shared caches and rate limits, an optimisation never a request's dependency: a client
that fails fast, and an outage breaker (in-process fallback, one warning, a retry after a backoff).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from ragbridge.service.telemetry import Metrics

try:
    from redis.asyncio import Redis
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import RedisError
except ImportError as exc:  # the optional [redis] extra
    raise ImportError(
        "RAGBRIDGE_REDIS_URL needs the Redis client: pip install 'ragbridge[redis]'"
    ) from exc

log = logging.getLogger(__name__)

T = TypeVar("T")

SOCKET_TIMEOUT = 0.5
"""Seconds a Redis connect or command may take before it counts as an outage."""


def open_redis(url: str) -> Redis:
    """A client with one connection pool for `url`; connects lazily, so startup never waits.

    One immediate retry after a connection error replaces a pooled connection that went stale
    (Redis restarted); a timeout is not retried, so no call waits longer than `SOCKET_TIMEOUT`.
    """
    client: Redis = Redis.from_url(
        url,
        socket_timeout=SOCKET_TIMEOUT,
        socket_connect_timeout=SOCKET_TIMEOUT,
        retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
        health_check_interval=30,
    )
    return client


class RedisBreaker:
    """Decides per call whether `component` uses Redis or its in-process fallback; `up` is
    whether the last Redis call succeeded."""

    def __init__(
        self,
        component: str,
        metrics: Metrics | None = None,
        *,
        backoff: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.component = component
        self.backoff = backoff
        self.up = True
        self._metrics = metrics or Metrics()
        self._clock = clock
        self._retry_at = 0.0
        self._metrics.set_redis_up(component, True)

    async def call(
        self, on_redis: Callable[[], Awaitable[T]], in_process: Callable[[], Awaitable[T]]
    ) -> T:
        """`on_redis()` while Redis works (or is due a retry), else `in_process()`."""
        if not self.up:
            now = self._clock()
            if now < self._retry_at:
                return await in_process()
            self._retry_at = now + self.backoff  # one probe at a time; the others stay in-process
        try:
            result = await on_redis()
        except RedisError as exc:
            self._failed(exc)
        else:
            if not self.up:
                self.up = True
                self._metrics.set_redis_up(self.component, True)
                log.warning("Redis is back for %s; shared again across replicas", self.component)
            return result
        return await in_process()

    def _failed(self, exc: RedisError) -> None:
        self._retry_at = self._clock() + self.backoff
        self._metrics.count_redis_error(self.component)
        if self.up:
            self.up = False
            self._metrics.set_redis_up(self.component, False)
            log.warning(
                "Redis unavailable for %s (%s: %s); serving in-process until it answers "
                "again (retrying every %g s)",
                self.component,
                type(exc).__name__,
                exc,
                self.backoff,
            )
        else:
            log.debug("Redis still unavailable for %s: %s", self.component, exc)
