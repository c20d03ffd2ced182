"""The Embedder protocol: what ingest, retrieval and `/v1/embeddings` need from a model."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from ragbridge.store.base import Vector


@runtime_checkable
class Embedder(Protocol):
    """Turns text into L2-normalised float32 vectors, off the event loop."""

    # Read-only properties, so an implementation may compute them lazily (a remote model's
    # dimension is known only once the API has answered); plain attributes satisfy them too.
    @property
    def name(self) -> str:
        """Model name recorded on each collection, e.g. `all-MiniLM-L6-v2`."""

    @property
    def dimension(self) -> int:
        """Length of every vector."""

    @property
    def max_tokens(self) -> int:
        """Longest input the model reads; the splitter keeps every chunk within it."""

    @property
    def multilingual(self) -> bool:
        """False for English-only models: retrieval then ignores dense scores for other scripts."""

    def count_tokens(self, text: str) -> int:
        """Tokens `text` takes in this model's own tokenizer (no special tokens)."""

    async def embed_documents(self, texts: Sequence[str]) -> Vector:
        """One row per text, batched."""

    async def embed_query(self, text: str) -> Vector:
        """One 1-D vector; concurrent calls may be coalesced into one batch."""

    async def close(self) -> None:
        """Release resources (HTTP clients, thread pools)."""
