"""Text to vectors: a packaged local model (multilingual USE by default) or a remote API."""

from __future__ import annotations

from ragbridge.embeddings.base import Embedder
from ragbridge.embeddings.names import E5_SMALL, USE_MULTILINGUAL, same_model
from ragbridge.settings import Settings

__all__ = ["Embedder", "create_embedder"]


def create_embedder(settings: Settings) -> Embedder:
    """The embedder `settings` ask for: remote when `embedding_base_url` is set, else local.

    Nothing heavy happens here (models load on first use); an unknown local model is a
    ValueError that says what is accepted.
    """
    if settings.embedding_base_url:
        from ragbridge.embeddings.remote import RemoteEmbedder, RemoteEmbeddingConfig

        return RemoteEmbedder(RemoteEmbeddingConfig.from_settings(settings))
    if same_model(settings.embedding_model, USE_MULTILINGUAL):
        from ragbridge.embeddings.use import UseEmbedder

        return UseEmbedder(batch_size=settings.embedding_batch_size)
    if same_model(settings.embedding_model, E5_SMALL):
        from ragbridge.embeddings.e5 import E5Embedder

        return E5Embedder(batch_size=settings.embedding_batch_size)
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
