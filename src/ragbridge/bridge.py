"""The Python API (docs/python-api.md): `ragbridge.open(settings)` wires ragbridge once; the
server, the CLI and the console all use the `Ragbridge` it yields. The ingest pipeline and the
chat side are built on first read, so `ragbridge keys list` neither loads an LLM nor parsers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ragbridge.cache import create_cache
from ragbridge.cache.base import Cache
from ragbridge.cache.embeddings import SharedQueryEmbeddings
from ragbridge.embeddings import create_embedder
from ragbridge.embeddings.base import Embedder
from ragbridge.embeddings.remote import RemoteEmbedder
from ragbridge.retrieval.fusion import FusionConfig
from ragbridge.retrieval.hybrid import HybridRetriever
from ragbridge.retrieval.rerank import create_reranker
from ragbridge.service.api_keys import NewKey, create_key
from ragbridge.service.telemetry import Metrics
from ragbridge.settings import RetrievalMode, Settings
from ragbridge.store import open_store
from ragbridge.store.base import (
    ApiKeyRecord,
    CollectionInfo,
    DocumentRecord,
    MetadataFilter,
    SearchHit,
    Store,
)

if TYPE_CHECKING:  # imported where first used: `ragbridge keys list` needs neither side
    from ragbridge.chat import ChatService
    from ragbridge.ingest.pipeline import IngestPipeline
    from ragbridge.ingest.results import IngestProgress, IngestResult
    from ragbridge.llm.local.model import LocalModel
    from ragbridge.llm.upstream import UpstreamClient

__all__ = ["Answer", "Ragbridge", "open"]


@dataclass(frozen=True)
class Answer:
    """A non-streamed RAG answer: its text, the passages it cites, and the full completion."""

    text: str
    sources: list[dict[str, Any]]
    completion: dict[str, Any]


@dataclass
class Ragbridge:
    """One wired ragbridge (get it from `open()`): the attributes are the services the HTTP
    routes use, the methods what a Python caller needs."""

    settings: Settings
    metrics: Metrics
    store: Store
    embedder: Embedder
    cache: Cache
    retriever: HybridRetriever
    _stack: AsyncExitStack = field(repr=False)
    upstream: UpstreamClient | None = None
    """The upstream LLM client once `chat` is built; None without an upstream (extractive)."""
    local_model: LocalModel | None = None
    """The in-process GGUF model once `chat` is built, when `settings.local_model` names one."""

    @cached_property
    def pipeline(self) -> IngestPipeline:
        """Load, split, embed and store: what `ingest` and uploads go through."""
        from ragbridge.ingest.pipeline import IngestPipeline

        return IngestPipeline(self.store, self.embedder, self.settings, self.metrics)

    # --- collections ---------------------------------------------------------------------
    async def collections(self) -> list[CollectionInfo]:
        """Every collection, with its embedding model and sizes."""
        return await self.store.list_collections()

    async def collection(self, name: str) -> CollectionInfo | None:
        return await self.store.get_collection(name)

    async def create_collection(self, name: str) -> CollectionInfo:
        """Create `name` for this embedder (or check an existing one was made with it)."""
        return await self.pipeline.ensure_collection(name)

    async def delete_collection(self, name: str) -> bool:
        """Delete a collection with all it holds; False when there was none."""
        return await self.store.delete_collection(name)

    async def documents(self, collection: str) -> list[DocumentRecord]:
        """The documents of `collection` (empty when there is none)."""
        return await self.store.list_documents(collection)

    async def document(self, collection: str, document_id: str) -> DocumentRecord | None:
        return await self.store.get_document(collection, document_id)

    async def delete_document(self, collection: str, document_id: str) -> bool:
        """Delete a document and its chunks; False when there was none."""
        return await self.store.delete_document(collection, document_id)

    # --- ingest and search ---------------------------------------------------------------
    async def ingest(
        self,
        collection: str,
        paths: Iterable[Path | str],
        *,
        progress: IngestProgress | None = None,
    ) -> list[IngestResult]:
        """Ingest files and folders (read recursively, known types only) into `collection`,
        created if new; unchanged files are skipped, a failed file gets a `failed` result."""
        from ragbridge.ingest.files import discover

        found = discover(Path(p) for p in paths)
        return await self.pipeline.ingest_files(collection, found.files, progress=progress)

    async def ingest_bytes(self, collection: str, filename: str, data: bytes) -> IngestResult:
        """Ingest one upload; its type comes from `filename`."""
        return await self.pipeline.ingest_bytes(collection, filename, data)

    async def search(
        self,
        collection: str,
        query: str,
        *,
        top_k: int | None = None,
        mode: RetrievalMode | None = None,
        filters: MetadataFilter | None = None,
    ) -> list[SearchHit]:
        """The best passages for `query`, best first, as the server finds them (defaults:
        `settings.top_k`, `retrieval_mode` and `score_threshold`)."""
        return await self.retriever.search(
            collection,
            query,
            top_k=top_k or self.settings.top_k,
            mode=mode or self.settings.retrieval_mode,
            filters=filters,
            score_threshold=self.settings.score_threshold,
        )

    # --- chat ----------------------------------------------------------------------------
    @cached_property
    def chat(self) -> ChatService:
        """The chat service behind `/v1/chat/completions`, built (and a local model started)
        on first read."""
        from ragbridge.cache.retrieval import CachedRetriever
        from ragbridge.chat import ChatService
        from ragbridge.llm.backend import ChatBackend
        from ragbridge.llm.cache import ResponseCache
        from ragbridge.llm.local.model import LocalModel
        from ragbridge.llm.router import ModelRouter
        from ragbridge.llm.upstream import UpstreamClient, UpstreamConfig
        from ragbridge.rag import RagAnswerer

        settings, metrics, stack = self.settings, self.metrics, self._stack
        if settings.upstream_enabled:
            self.upstream = UpstreamClient(UpstreamConfig.from_settings(settings), metrics)
            stack.push_async_callback(self.upstream.aclose)
        backend: ChatBackend | None = self.upstream
        router: ModelRouter | None = None
        if settings.local_model is not None:  # served in-process, beside any remote upstream
            local = LocalModel(settings, metrics)
            local.start()  # loads on its worker thread; requests wait for it
            stack.push_async_callback(local.aclose)
            backend = router = ModelRouter(local, self.upstream)
            self.local_model = router.local
        cached = CachedRetriever(
            self.retriever, self.store, self.cache, settings.cache_ttl, metrics
        )
        rag = RagAnswerer(
            settings,
            self.store,
            cached,
            backend,
            context_window=router.context_window if router is not None else None,
        )
        responses = ResponseCache(self.cache, settings.cache_ttl, metrics)
        return ChatService(
            backend,
            rag=rag,
            responses=responses if settings.response_cache else None,
            console_links=settings.console,
        )

    async def ask(
        self,
        collection: str,
        question: str,
        *,
        history: Sequence[dict[str, Any]] = (),
        model: str | None = None,
    ) -> Answer:
        """Answer `question` from `collection` (with the upstream `model`, default the
        configured one; extractive without an upstream), after the earlier `history` turns."""
        from ragbridge.rag import RAG_PREFIX

        rag_model = RAG_PREFIX + collection + (f"/{model}" if model else "")
        messages = [*history, {"role": "user", "content": question}]
        chat = self.chat
        turn = await chat.turn({"model": rag_model, "messages": messages}, {})
        completion = await chat.complete(turn)
        text = completion["choices"][0]["message"].get("content") or ""
        return Answer(text, list(completion.get("sources", [])), completion)

    # --- API keys ------------------------------------------------------------------------
    async def create_key(
        self,
        name: str,
        *,
        collections: Iterable[str] | None = None,
        rpm: int | None = None,
        tpm: int | None = None,
    ) -> NewKey:
        """A new API key (its secret is in the result only); `collections=None`: all."""
        return await create_key(self.store, name, collections=collections, rpm=rpm, tpm=tpm)

    async def keys(self) -> list[ApiKeyRecord]:
        """Every key's record (names, scope, limits; hashes only)."""
        return await self.store.list_api_keys()

    async def revoke_key(self, name: str) -> bool:
        """Revoke a live key; False when there is none by that name."""
        return await self.store.revoke_api_key(name)


@asynccontextmanager
async def open(
    settings: Settings | None = None, *, metrics: Metrics | None = None
) -> AsyncIterator[Ragbridge]:
    """Open the store, embedder, cache and retriever for `settings` (default: from the
    environment); everything is closed, in reverse order, when the block ends."""
    settings = settings or Settings()
    metrics = metrics or Metrics()
    async with AsyncExitStack() as stack:
        store = await open_store(settings)
        stack.push_async_callback(store.close)
        embedder: Embedder = create_embedder(settings)
        stack.push_async_callback(embedder.close)
        if isinstance(embedder, RemoteEmbedder):
            await embedder.discover()  # the dimension; warns if the API is down
        cache = create_cache(settings, metrics)
        stack.push_async_callback(cache.close)
        if settings.redis_url:  # replicas share query vectors (each keeps its own LRU too)
            embedder = SharedQueryEmbeddings(embedder, cache, settings.cache_ttl, metrics)
        reranker = create_reranker(settings)
        if reranker is not None:
            stack.push_async_callback(reranker.close)
        config = FusionConfig.from_settings(settings)
        retriever = HybridRetriever(
            store, embedder, reranker=reranker, config=config, metrics=metrics
        )
        yield Ragbridge(settings, metrics, store, embedder, cache, retriever, stack)
