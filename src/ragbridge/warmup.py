"""No cold start: load the embedder and open every collection's vectors in the background at
start, so the first query is as fast as the tenth. `/ready` reports progress as its `warm` part.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ragbridge.embeddings.remote import RemoteEmbedder
from ragbridge.embeddings.threaded import ThreadedEmbedder
from ragbridge.errors import RagbridgeError
from ragbridge.retrieval.hybrid import HybridRetriever
from ragbridge.store.base import Store

log = logging.getLogger(__name__)


@dataclass
class Warmth:
    """What has been warmed: each part `warming`, `ok`, `skipped` or `error`."""

    embedder: str = "warming"
    collections: str = "warming"
    seconds: dict[str, float] = field(default_factory=dict)
    detail: str | None = None

    def check(self, store: Store) -> dict[str, Any]:
        """The `warm` part of `/ready`: `ok` once the model and every index are loaded."""
        index_status = getattr(store, "index_status", None)
        indexes = index_status() if callable(index_status) else {"warm": True}
        parts = (self.embedder, self.collections)
        if "error" in parts:
            status = "error"
        elif "warming" in parts or not indexes.get("warm", True):
            status = "warming"
        else:
            status = "ok"
        body = {"status": status, **asdict(self)}
        if not self.detail:
            del body["detail"]
        if "collections" in indexes:
            body["indexes"] = indexes["collections"]
        return body


async def warm_up(warmth: Warmth, retriever: HybridRetriever) -> None:
    """Load the local model (one query encoded: its first forward pass is the slow one) and
    the Korean analyzer, then search each collection once (reads its vectors or opens its
    index, and SQLite's pages)."""
    store, embedder = retriever.store, retriever.embedder
    started = time.perf_counter()
    if isinstance(embedder, RemoteEmbedder):
        warmth.embedder = "skipped"  # nothing to load in this process
    else:
        try:
            await embedder.embed_query("warm up")
            await asyncio.to_thread(retriever.analyzer.analyze, "준비 운동")  # loads Kiwi
            warmth.embedder = "ok"
        except Exception as exc:  # reported by /ready; queries will show the same error
            log.exception("warming the embedder failed")
            warmth.embedder = "error" if isinstance(embedder, ThreadedEmbedder) else "skipped"
            warmth.detail = str(exc) or type(exc).__name__
    warmth.seconds["embedder"] = round(time.perf_counter() - started, 2)
    started = time.perf_counter()
    try:
        for info in await store.list_collections():
            try:
                await retriever.search(info.name, "warm up 준비", top_k=1)
            except RagbridgeError:  # e.g. embedded with another model: open its vectors only
                query = np.ones(info.dimension, dtype=np.float32)
                await store.dense_search(info.name, query, 1)
        warmth.collections = "ok"
    except Exception as exc:
        log.exception("opening the collections' vectors failed")
        warmth.collections, warmth.detail = "error", str(exc) or type(exc).__name__
    warmth.seconds["collections"] = round(time.perf_counter() - started, 2)
    log.info("warm: embedder %s, collections %s (%s)", warmth.embedder, warmth.collections,
             warmth.seconds)  # fmt: skip


@asynccontextmanager
async def warming(warmth: Warmth, retriever: HybridRetriever) -> AsyncIterator[None]:
    """Run `warm_up` as a task while the app serves; cancelled if the app stops first."""
    task = asyncio.create_task(warm_up(warmth, retriever), name="ragbridge-warm-up")
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
