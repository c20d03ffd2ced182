"""Any OpenAI-compatible `/v1/embeddings` endpoint (OpenAI, Ollama, vLLM, TEI, another ragbridge).
Tokens are counted by MiniLM's own tokenizer for MiniLM, else by `approximate_tokens`."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np

from ragbridge.embeddings.batching import Coalescer
from ragbridge.embeddings.names import MINILM, is_multilingual, same_model
from ragbridge.endpoint import Endpoint, endpoint_fields
from ragbridge.errors import ServiceUnavailable, UpstreamError, UpstreamTimeout
from ragbridge.retry import error_message, send
from ragbridge.settings import Settings
from ragbridge.store.base import Vector
from ragbridge.store.vector_index import normalise

log = logging.getLogger(__name__)

REMOTE_MAX_TOKENS = 512
"""Input limit assumed for remote models other than MiniLM (most accept 512 or more)."""
MINILM_MAX_TOKENS = 254
"""all-MiniLM-L6-v2 reads 256 tokens including [CLS] and [SEP]."""

_APPROX_TOKEN = re.compile(r"[A-Za-z]{1,6}|\d{1,3}|[^\sA-Za-z\d]")


def approximate_tokens(text: str) -> int:
    """A tokenizer-free token count that errs high for English, Korean and code alike (letters
    in runs of six, digits in runs of three, any other character one), so chunks fit."""
    return len(_APPROX_TOKEN.findall(text))


def _minilm_tokenizer() -> Any:
    """MiniLM's own tokenizer when the `[torch]` extra is installed, else None (approximate)."""
    try:
        from ragbridge.embeddings.local import load_tokenizer, packaged_minilm_path

        return load_tokenizer(packaged_minilm_path())
    except (ImportError, ValueError):  # no tokenizers, or no packaged MiniLM
        return None


@dataclass(frozen=True, slots=True, kw_only=True)
class RemoteEmbeddingConfig(Endpoint):
    """What `RemoteEmbedder` needs: `RemoteEmbeddingConfig.from_settings(settings)`, or by hand."""

    model: str
    batch_size: int = 64
    multilingual: bool | None = None
    """None: judged from the model's name."""

    @classmethod
    def from_settings(cls, settings: Settings) -> RemoteEmbeddingConfig:
        """`RAGBRIDGE_EMBEDDING_*`, with the upstream's timeouts and retries."""
        fields = endpoint_fields(settings, "embedding")
        fields.update(model=settings.embedding_model, batch_size=settings.embedding_batch_size)
        return cls(**fields, multilingual=settings.embedding_multilingual)


class RemoteEmbedder:
    """Embeds over one pooled `httpx.AsyncClient`: its own, or `client` (left open on `close`)."""

    def __init__(
        self, config: RemoteEmbeddingConfig, *, client: httpx.AsyncClient | None = None
    ) -> None:
        self._config = config
        self._url = httpx.URL(f"{config.base_url.rstrip('/')}/embeddings")
        self._batch_size = max(1, config.batch_size)
        self.name = config.model
        self.multilingual = is_multilingual(config.model, config.multilingual)
        minilm = same_model(config.model, MINILM)
        self.max_tokens = MINILM_MAX_TOKENS if minilm else REMOTE_MAX_TOKENS
        self._tokenizer = _minilm_tokenizer() if minilm else None
        self._dimension: int | None = None
        self._headers = {"Accept": "application/json", **config.auth_headers()}
        self._owns_client = client is None
        self._client = client or httpx.AsyncClient()
        self._queries = Coalescer(self._post, max_batch=self._batch_size)

    @property
    def dimension(self) -> int:
        """Known once the API has answered (`discover` at startup, or any embedding call)."""
        if self._dimension is None:
            raise ServiceUnavailable(
                f"The embedding API at {self._config.base_url} has not answered yet, so the "
                f"dimension of {self.name!r} is unknown; retry when it is reachable."
            )
        return self._dimension

    def count_tokens(self, text: str) -> int:
        if self._tokenizer is not None:
            return len(self._tokenizer.encode(text, add_special_tokens=False).ids)
        return approximate_tokens(text)

    async def discover(self) -> int | None:
        """Learn the dimension with one small call; None (and a warning) if the API is down."""
        if self._dimension is None:
            try:
                await self._post(["ragbridge"], retries=0)
            except UpstreamError as exc:
                log.warning("embedding API not reachable yet: %s", exc.message)
        return self._dimension

    async def embed_documents(self, texts: Sequence[str]) -> Vector:
        """One row per text, sent in batches of `embedding_batch_size`."""
        if not texts:
            return np.empty((0, self._dimension or 0), dtype=np.float32)
        parts = [
            await self._post(list(texts[start : start + self._batch_size]))
            for start in range(0, len(texts), self._batch_size)
        ]
        return np.concatenate(parts)

    async def embed_query(self, text: str) -> Vector:
        """One query vector; concurrent queries share one request, recent ones are cached."""
        return await self._queries.embed(text)

    async def close(self) -> None:
        await self._queries.close()
        if self._owns_client:
            await self._client.aclose()

    async def _post(self, texts: list[str], *, retries: int | None = None) -> Vector:
        """POST /embeddings with retries; the rows, checked and L2-normalised."""
        config, base_url = self._config, self._config.base_url
        request = self._client.build_request(
            "POST",
            self._url,
            json={"model": self.name, "input": texts},
            headers=self._headers,
            timeout=config.timeout(),
        )
        try:
            response, _ = await send(
                self._client, request, config.retry, resend=True, stream=False, retries=retries
            )
        except httpx.TimeoutException as exc:
            raise UpstreamTimeout(
                f"The embedding API at {base_url} timed out ({type(exc).__name__})."
            ) from None
        except httpx.HTTPError as exc:
            raise UpstreamError(f"Cannot reach the embedding API at {base_url}: {exc}") from None
        if response.status_code != 200:
            raise UpstreamError(
                f"The embedding API answered {response.status_code}: {error_message(response)}"
            )
        return self._vectors(response, len(texts))

    def _vectors(self, response: httpx.Response, expected: int) -> Vector:
        try:
            rows = sorted(response.json()["data"], key=lambda item: item["index"])
            vectors = np.asarray([row["embedding"] for row in rows], dtype=np.float32)
        except (ValueError, KeyError, TypeError) as exc:
            raise UpstreamError(f"The embedding API sent an unreadable answer: {exc!r}") from exc
        if vectors.ndim != 2 or len(vectors) != expected:
            raise UpstreamError(
                f"The embedding API returned {len(vectors)} vectors for {expected} inputs."
            )
        dimension = vectors.shape[1]
        if self._dimension is None:
            self._dimension = dimension
        elif dimension != self._dimension:
            raise UpstreamError(
                f"The embedding API returned {dimension}-dimensional vectors for {self.name!r}, "
                f"earlier {self._dimension}: did the model behind it change?"
            )
        return normalise(vectors)
