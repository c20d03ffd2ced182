"""ragbridge's own rerankers as plugins (registered in pyproject.toml under
`ragbridge.rerankers`, the same way a third-party reranker is)."""

from __future__ import annotations

import logging
from pathlib import Path

from ragbridge.plugins import RerankerPlugin
from ragbridge.retrieval.rerank import LocalCrossEncoder, RemoteReranker, RerankConfig, Reranker
from ragbridge.settings import Settings

log = logging.getLogger(__name__)


def _remote(settings: Settings) -> Reranker | None:
    if not settings.rerank_base_url:
        return None
    return RemoteReranker(RerankConfig.from_settings(settings))


def _cross_encoder(settings: Settings) -> Reranker | None:
    if not settings.rerank_model:
        return None
    path = Path(settings.rerank_model).expanduser()
    if path.is_dir():
        return LocalCrossEncoder(path)
    log.warning(
        "rerank model %r is not a local directory and no rerank URL is set", settings.rerank_model
    )
    return None


REMOTE = RerankerPlugin(_remote)
"""A rerank endpoint (vLLM, TEI, Jina, Cohere-compatible): chosen when `rerank_base_url` is set."""
CROSS_ENCODER = RerankerPlugin(_cross_encoder)
"""A sentence-transformers cross-encoder directory named by `rerank_model`."""
