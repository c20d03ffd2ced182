"""Wrappers around a real embedder for tests and benchmarks: subclass and change one method."""

from __future__ import annotations

from collections.abc import Sequence

from ragbridge.embeddings.base import Embedder
from ragbridge.store.base import Vector


class DelegatingEmbedder:
    """An `Embedder` that passes every call on to `inner`."""

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def dimension(self) -> int:
        return self.inner.dimension

    @property
    def max_tokens(self) -> int:
        return self.inner.max_tokens

    @property
    def multilingual(self) -> bool:
        return self.inner.multilingual

    def count_tokens(self, text: str) -> int:
        return self.inner.count_tokens(text)

    async def embed_documents(self, texts: Sequence[str]) -> Vector:
        return await self.inner.embed_documents(texts)

    async def embed_query(self, text: str) -> Vector:
        return await self.inner.embed_query(text)

    async def close(self) -> None:
        await self.inner.close()
