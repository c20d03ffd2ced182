"""ragbridge's own embedders as plugins (registered in pyproject.toml under
`ragbridge.embedders`, the same way a third-party embedder is). Each imports its engine only
when it is created."""

from __future__ import annotations

from ragbridge.embeddings.base import Embedder
from ragbridge.embeddings.names import E5_SMALL, MINILM, USE_MULTILINGUAL
from ragbridge.plugins import EmbedderPlugin
from ragbridge.settings import Settings


def _remote(settings: Settings) -> Embedder:
    from ragbridge.embeddings.remote import RemoteEmbedder, RemoteEmbeddingConfig

    return RemoteEmbedder(RemoteEmbeddingConfig.from_settings(settings))


def _use(settings: Settings) -> Embedder:
    from ragbridge.embeddings.use import UseEmbedder

    return UseEmbedder(batch_size=settings.embedding_batch_size)


def _e5(settings: Settings) -> Embedder:
    from ragbridge.embeddings.e5 import E5Embedder

    return E5Embedder(batch_size=settings.embedding_batch_size)


def _sentence_transformers(settings: Settings) -> Embedder:
    try:
        from ragbridge.embeddings.local import LocalEmbedder
    except ImportError as exc:  # tokenizers, torch: the optional `[torch]` extra
        raise ValueError(
            f"Embedding model {settings.embedding_model!r} needs sentence-transformers: "
            "pip install 'ragbridge[torch]'."
        ) from exc
    return LocalEmbedder(
        settings.embedding_model,
        batch_size=settings.embedding_batch_size,
        multilingual=settings.embedding_multilingual,
    )


REMOTE = EmbedderPlugin(_remote)
"""Any OpenAI-compatible `/v1/embeddings` endpoint: chosen whenever `embedding_base_url` is set."""
USE = EmbedderPlugin(_use, models=(USE_MULTILINGUAL,))
E5 = EmbedderPlugin(_e5, models=(E5_SMALL,))
SENTENCE_TRANSFORMERS = EmbedderPlugin(_sentence_transformers, models=(MINILM,))
"""Any other local model name or directory (the `[torch]` extra)."""
