"""The real embedder (packaged all-MiniLM-L6-v2, loaded once per session) and a real store."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from ragbridge.embeddings import create_embedder
from ragbridge.embeddings.base import Embedder
from ragbridge.ingest.pipeline import IngestPipeline
from ragbridge.settings import Settings
from ragbridge.store.sqlite import SqliteStore


@pytest.fixture(scope="session")
def embedder() -> Iterator[Embedder]:
    """The default local embedder, as `create_embedder` makes it; the model loads on first use."""
    model = create_embedder(Settings(embedding_model="all-MiniLM-L6-v2", embedding_base_url=None))
    yield model
    asyncio.run(model.close())


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    """An opened, empty embedded store in a temporary directory."""
    opened = SqliteStore(tmp_path / "store" / "ragbridge.db")
    await opened.open()
    yield opened
    await opened.close()


@pytest.fixture
def make_pipeline(
    store: SqliteStore, embedder: Embedder, make_settings: Callable[..., Settings]
) -> Callable[..., IngestPipeline]:
    """`make_pipeline(**settings)`: a pipeline on the test store with the real embedder."""

    def make(**overrides: object) -> IngestPipeline:
        return IngestPipeline(store, embedder, make_settings(**overrides))

    return make
