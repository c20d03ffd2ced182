"""Query vectors shared by replicas: a query embedded by one is read from Redis by the others."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ragbridge.cache.base import Cache, cache_key
from ragbridge.embeddings.base import Embedder
from ragbridge.service.telemetry import Metrics
from ragbridge.store.base import Vector

CACHE_NAME = "query_embedding"


@dataclass(eq=False)
class SharedQueryEmbeddings:
    """An `Embedder` that looks query vectors up in `cache` first; everything else passes through.

    Used only with Redis: the wrapped embedder already remembers its own recent queries.
    """

    embedder: Embedder
    cache: Cache
    ttl: float
    metrics: Metrics | None = None

    @property
    def name(self) -> str:
        return self.embedder.name

    @property
    def dimension(self) -> int:
        return self.embedder.dimension

    @property
    def max_tokens(self) -> int:
        return self.embedder.max_tokens

    @property
    def multilingual(self) -> bool:
        return self.embedder.multilingual

    def count_tokens(self, text: str) -> int:
        return self.embedder.count_tokens(text)

    async def embed_documents(self, texts: Sequence[str]) -> Vector:
        return await self.embedder.embed_documents(texts)

    async def embed_query(self, text: str) -> Vector:
        key = cache_key(CACHE_NAME, self.embedder.name, text)
        data = await self.cache.get(key)
        # A float32 vector, read-only like the embedder's own; anything else is a miss.
        cached = np.frombuffer(data, dtype=np.float32) if data and not len(data) % 4 else None
        if self.metrics is not None:
            self.metrics.count_cache(CACHE_NAME, cached is not None)
        if cached is not None:
            return cached
        vector = await self.embedder.embed_query(text)
        await self.cache.set(key, np.asarray(vector, dtype=np.float32).tobytes(), self.ttl)
        return vector

    async def close(self) -> None:
        await self.embedder.close()
