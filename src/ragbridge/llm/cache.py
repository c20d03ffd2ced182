"""Opt-in cache (`RAGBRIDGE_RESPONSE_CACHE`) of temperature-0 completions, which ask for the same
answer to the same upstream body (less `stream`, `stream_options`); a streamed answer is cached
once rebuilt from its chunks, and a cached one replayed as a stream when one is asked for."""

from __future__ import annotations

from typing import Any

import orjson

from ragbridge.cache.base import Cache, cache_key
from ragbridge.service.telemetry import Metrics

CACHE_NAME = "response"
_DELIVERY_FIELDS = frozenset({"stream", "stream_options"})


def is_deterministic(body: dict[str, Any]) -> bool:
    """Whether the request asks for temperature 0 (a bool is not a temperature)."""
    temperature = body.get("temperature")
    return temperature == 0 and not isinstance(temperature, bool)


class ResponseCache:
    """Completions by request, in the shared cache for `ttl` seconds."""

    def __init__(self, cache: Cache, ttl: float, metrics: Metrics | None = None) -> None:
        self._cache = cache
        self._ttl = ttl
        self._metrics = metrics

    @staticmethod
    def key(body: dict[str, Any]) -> str:
        """The cache key of an upstream request body: all of it but how it is delivered."""
        fields = {name: value for name, value in body.items() if name not in _DELIVERY_FIELDS}
        return cache_key(CACHE_NAME, fields)

    async def get(self, body: dict[str, Any]) -> dict[str, Any] | None:
        """The cached `chat.completion` for `body`, or None; counted as a hit or a miss."""
        completion = _decode(await self._cache.get(self.key(body)))
        if self._metrics is not None:
            self._metrics.count_cache(CACHE_NAME, completion is not None)
        return completion

    async def put(self, body: dict[str, Any], completion: dict[str, Any]) -> None:
        """Remember a finished completion (one that has choices) for identical requests."""
        if completion.get("choices"):
            await self._cache.set(self.key(body), orjson.dumps(completion), self._ttl)


def _decode(data: bytes | None) -> dict[str, Any] | None:
    if not data:
        return None
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None
