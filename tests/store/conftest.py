"""The `store` fixture: one conformance suite, run against every backend in `BACKENDS`.

To add a backend, write an async context manager factory `(request, tmp_path) -> Store` that
yields an opened, empty store, and add one line to `BACKENDS` (and its mark to `BACKEND_MARKS`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import pytest

from ragbridge.store.base import Store
from ragbridge.store.sqlite import SqliteStore

StoreFactory = Callable[[pytest.FixtureRequest, Path], AbstractAsyncContextManager[Store]]


@asynccontextmanager
async def sqlite_store(_: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    store = SqliteStore(tmp_path / "store" / "ragbridge.db")
    await store.open()
    try:
        yield store
    finally:
        await store.close()


@asynccontextmanager
async def sqlite_ann_store(_: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """The embedded store with its approximate index on from the first chunk."""
    from ragbridge.store.ann_index import AnnConfig

    store = SqliteStore(
        tmp_path / "store" / "ragbridge.db", ann=AnnConfig(min_chunks=1, merge_min=8)
    )
    await store.open()
    try:
        yield store
    finally:
        await store.close()


@asynccontextmanager
async def postgres_store(request: pytest.FixtureRequest, _: Path) -> AsyncIterator[Store]:
    from ragbridge.store.postgres import PostgresStore

    store = PostgresStore(request.getfixturevalue("postgres_url"))
    await store.open()
    try:
        yield store
    finally:
        await store.close()


BACKENDS: dict[str, StoreFactory] = {
    "sqlite": sqlite_store,
    "sqlite-ann": sqlite_ann_store,
    "postgres": postgres_store,
}
BACKEND_MARKS: dict[str, pytest.MarkDecorator] = {"postgres": pytest.mark.postgres}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(params=[pytest.param(name, marks=BACKEND_MARKS.get(name, ())) for name in BACKENDS])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """An opened, empty store of each backend."""
    async with BACKENDS[request.param](request, tmp_path) as opened:
        yield opened
