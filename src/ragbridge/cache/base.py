"""The Cache protocol: bytes by key with a time to live, in-process or shared through Redis."""

from __future__ import annotations

import hashlib
import json
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class Cache(Protocol):
    """A best-effort cache: a miss is always a correct answer, so failures read as misses."""

    async def get(self, key: str) -> bytes | None: ...

    async def set(self, key: str, value: bytes, ttl: float) -> None: ...

    async def close(self) -> None: ...


def cache_key(namespace: str, *parts: Any) -> str:
    """A stable key for JSON-serialisable `parts`, e.g. `cache_key("retrieval", coll, query)`."""
    payload = json.dumps(parts, sort_keys=True, ensure_ascii=False, default=str)
    return f"ragbridge:{namespace}:{hashlib.sha256(payload.encode()).hexdigest()}"
