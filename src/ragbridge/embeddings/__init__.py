"""Text to vectors: a packaged local model (multilingual USE by default) or a remote API.

Embedders are plugins (`ragbridge.embedders` entry points, see docs/plugins.md)."""

from __future__ import annotations

from ragbridge import plugins
from ragbridge.embeddings.base import Embedder
from ragbridge.embeddings.names import same_model
from ragbridge.settings import Settings

__all__ = ["Embedder", "create_embedder", "embedder_plugin"]


def embedder_plugin(settings: Settings) -> str:
    """The plugin `settings` select: `remote` when `embedding_base_url` is set, else the one
    whose `models` name `embedding_model`, else `sentence-transformers` (any local model)."""
    if settings.embedding_base_url:
        return "remote"
    model = settings.embedding_model
    claimed = plugins.claimant(
        plugins.embedders(), lambda plugin: any(same_model(model, m) for m in plugin.models)
    )
    return claimed or "sentence-transformers"


def create_embedder(settings: Settings) -> Embedder:
    """The embedder `settings` ask for (see `embedder_plugin`); models load on first use. An
    unknown local model is a ValueError that says what is accepted."""
    name = embedder_plugin(settings)
    return plugins.require(plugins.embedders(), "ragbridge.embedders", name).create(settings)
