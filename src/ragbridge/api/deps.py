"""Typed accessors for the services `create_app` puts on `app.state`, for route dependencies."""

from __future__ import annotations

from fastapi import Request

from ragbridge.cache.base import Cache
from ragbridge.chat import ChatService
from ragbridge.embeddings.base import Embedder
from ragbridge.ingest.pipeline import IngestPipeline
from ragbridge.llm.upstream import UpstreamClient
from ragbridge.retrieval.hybrid import HybridRetriever
from ragbridge.service.rate_limits import RateLimiter
from ragbridge.service.telemetry import Metrics
from ragbridge.settings import Settings
from ragbridge.store.base import Store


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


def get_embedder(request: Request) -> Embedder:
    embedder: Embedder = request.app.state.embedder
    return embedder


def get_upstream(request: Request) -> UpstreamClient | None:
    """The upstream LLM client, or None when no upstream is configured (extractive mode)."""
    upstream: UpstreamClient | None = request.app.state.upstream
    return upstream


def get_chat(request: Request) -> ChatService:
    chat: ChatService = request.app.state.chat
    return chat


def get_metrics(request: Request) -> Metrics:
    metrics: Metrics = request.app.state.metrics
    return metrics


def get_rate_limiter(request: Request) -> RateLimiter:
    limiter: RateLimiter = request.app.state.rate_limiter
    return limiter


def get_retriever(request: Request) -> HybridRetriever:
    retriever: HybridRetriever = request.app.state.retriever
    return retriever


def get_pipeline(request: Request) -> IngestPipeline:
    pipeline: IngestPipeline = request.app.state.pipeline
    return pipeline


def get_cache(request: Request) -> Cache:
    """The shared cache: Redis across replicas when configured, else in-process."""
    cache: Cache = request.app.state.cache
    return cache
