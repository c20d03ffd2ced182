"""In-process LRU cache with per-entry expiry: the default when no Redis is configured."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

DEFAULT_MAX_BYTES = 64 * 1024 * 1024
_ENTRY_OVERHEAD = 200
"""Bytes an entry costs beyond its key and value (dict slot, tuple, float, object headers)."""


class MemoryCache:
    """At most `max_items` entries and `max_bytes` of keys and values; the least recently used
    goes first. A value larger than a quarter of `max_bytes` is not kept."""

    def __init__(
        self,
        max_items: int,
        clock: Callable[[], float] = time.monotonic,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        self._max_items = max_items
        self._max_bytes = max_bytes
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._bytes = 0

    async def get(self, key: str) -> bytes | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires, value = entry
        if expires <= self._clock():
            self._drop(key)
            return None
        self._entries.move_to_end(key)
        return value

    async def set(self, key: str, value: bytes, ttl: float) -> None:
        size = _size(key, value)
        if self._max_items <= 0 or ttl <= 0 or size * 4 > self._max_bytes:
            return
        self._drop(key)
        self._entries[key] = (self._clock() + ttl, value)
        self._bytes += size
        while len(self._entries) > self._max_items or self._bytes > self._max_bytes:
            self._drop(next(iter(self._entries)))

    async def close(self) -> None:
        self._entries.clear()
        self._bytes = 0

    def _drop(self, key: str) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._bytes -= _size(key, entry[1])


def _size(key: str, value: bytes) -> int:
    return len(key) + len(value) + _ENTRY_OVERHEAD
