"""Second-stage reranking: a rerank HTTP endpoint (Cohere/Jina `/v1/rerank`, or Hugging Face TEI's
`/rerank` dialect once the server asks for `texts`), or a local cross-encoder when one is installed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import httpx

from ragbridge import plugins
from ragbridge.endpoint import Endpoint, endpoint_fields
from ragbridge.errors import UpstreamError, UpstreamTimeout
from ragbridge.retry import error_message, send
from ragbridge.settings import Settings

RerankScores = list[tuple[int, float]]
"""(index into the documents given, relevance score), best first."""


@runtime_checkable
class Reranker(Protocol):
    """Scores (query, passage) pairs jointly; slower than retrieval, better at the top."""

    name: str
    multilingual: bool
    """False for English-only models: retrieval then skips reranking for other scripts."""

    async def rerank(self, query: str, documents: Sequence[str], top_n: int) -> RerankScores:
        """The best `top_n` documents for `query` with their scores, best first."""

    async def close(self) -> None:
        """Release resources."""


def _best(scores: Iterable[tuple[int, float]], top_n: int) -> RerankScores:
    return sorted(scores, key=lambda pair: pair[1], reverse=True)[:top_n]


def _parse_results(payload: Any) -> RerankScores:
    """Scores from a Cohere/Jina (`results`/`relevance_score`) or TEI (list/`score`) answer."""
    items = payload.get("results") if isinstance(payload, dict) else payload
    if not isinstance(items, list):
        raise UpstreamError("rerank endpoint returned an unexpected body")
    scores: RerankScores = []
    for item in items:
        score = item.get("relevance_score", item.get("score"))
        if not isinstance(item.get("index"), int) or not isinstance(score, int | float):
            raise UpstreamError("rerank endpoint returned a result without index or score")
        scores.append((item["index"], float(score)))
    return scores


@dataclass(frozen=True, slots=True, kw_only=True)
class RerankConfig(Endpoint):
    """What `RemoteReranker` needs: `RerankConfig.from_settings(settings)`, or built by hand."""

    model: str = "rerank"
    multilingual: bool = True
    read_timeout: float = 30.0  # it delays a search: a shorter leash than an LLM's

    @classmethod
    def from_settings(cls, settings: Settings) -> RerankConfig:
        """`RAGBRIDGE_RERANK_*`, with the upstream's connect timeout and retries."""
        fields = endpoint_fields(settings, "rerank") | {"read_timeout": 30.0}
        return cls(**fields, model=settings.rerank_model or "rerank")


class RemoteReranker:
    """A rerank endpoint (vLLM, TEI, Jina, Cohere-compatible) reached over HTTP, over its own
    pooled client or `client` (left open on `close`)."""

    def __init__(self, config: RerankConfig, *, client: httpx.AsyncClient | None = None) -> None:
        self.name = config.model
        self.multilingual = config.multilingual
        self._retry = config.retry
        self._url = httpx.URL(f"{config.base_url.rstrip('/')}/rerank")
        self._headers = config.auth_headers()
        self._timeout = config.timeout()
        self._owns_client = client is None
        self._client = client or httpx.AsyncClient()
        self._tei = False

    def _body(self, query: str, documents: Sequence[str], top_n: int) -> dict[str, Any]:
        if self._tei:
            return {"query": query, "texts": list(documents), "truncate": True}
        return {"model": self.name, "query": query, "documents": list(documents), "top_n": top_n}

    async def _post(self, body: dict[str, Any]) -> httpx.Response:
        request = self._client.build_request(
            "POST", self._url, json=body, headers=self._headers, timeout=self._timeout
        )
        try:
            response, _ = await send(self._client, request, self._retry, resend=True, stream=False)
        except httpx.TimeoutException as exc:
            raise UpstreamTimeout(f"rerank endpoint timed out: {self._url}") from exc
        except httpx.HTTPError as exc:
            raise UpstreamError(f"rerank endpoint unreachable: {self._url}: {exc}") from exc
        return response

    async def rerank(self, query: str, documents: Sequence[str], top_n: int) -> RerankScores:
        if not documents:
            return []
        response = await self._post(self._body(query, documents, top_n))
        if not self._tei and response.status_code in (400, 422) and "texts" in response.text:
            self._tei = True  # TEI names the field `texts`; remember and ask again
            response = await self._post(self._body(query, documents, top_n))
        if not response.is_success:
            raise UpstreamError(
                f"rerank endpoint answered {response.status_code}: {error_message(response)}"
            )
        try:
            payload = response.json()
        except ValueError as exc:
            raise UpstreamError("rerank endpoint returned invalid JSON") from exc
        scores = _parse_results(payload)
        if any(not 0 <= index < len(documents) for index, _ in scores):
            raise UpstreamError("rerank endpoint returned an index out of range")
        return _best(scores, top_n)

    async def close(self) -> None:
        if self._owns_client:
            await self._client.aclose()


class LocalCrossEncoder:
    """A sentence-transformers cross-encoder from a local directory, run off the event loop."""

    def __init__(self, model_path: Path, *, multilingual: bool = False) -> None:
        self.name = model_path.name
        self.multilingual = multilingual
        self._path = model_path
        self._model: Any = None
        self._lock = asyncio.Lock()

    async def _load(self) -> Any:
        async with self._lock:
            if self._model is None:
                from sentence_transformers import CrossEncoder

                self._model = await asyncio.to_thread(
                    CrossEncoder, str(self._path), device="cpu", local_files_only=True
                )
        return self._model

    async def rerank(self, query: str, documents: Sequence[str], top_n: int) -> RerankScores:
        if not documents:
            return []
        model = await self._load()
        pairs = [(query, document) for document in documents]
        raw = await asyncio.to_thread(model.predict, pairs, show_progress_bar=False)
        return _best(enumerate(map(float, raw)), top_n)

    async def close(self) -> None:
        self._model = None


def create_reranker(settings: Settings) -> Reranker | None:
    """The reranker `settings` ask for, from the `ragbridge.rerankers` plugins: `remote` when
    `rerank_base_url` is set, else the plugin whose `models` name `rerank_model`, else a local
    cross-encoder when `rerank_model` names a directory; none when neither is set."""
    if not (settings.rerank_base_url or settings.rerank_model):
        return None
    registered = plugins.rerankers()
    model = settings.rerank_model
    claimed = plugins.claimant(registered, lambda plugin: model in plugin.models)
    name = "remote" if settings.rerank_base_url else claimed or "cross-encoder"
    return plugins.require(registered, "ragbridge.rerankers", name).create(settings)
