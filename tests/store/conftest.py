"""The `store` fixture: one conformance suite, run against every backend in `BACKENDS`.

To add a backend, write an async context manager factory `(request, tmp_path) -> Store` that
yields an opened, empty store, and add one line to `BACKENDS` (and its mark to `BACKEND_MARKS`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import pytest

from ragbridge.store.base import Store
from ragbridge.store.sqlite import SqliteStore
from tests.support.stores import opened

StoreFactory = Callable[[pytest.FixtureRequest, Path], AbstractAsyncContextManager[Store]]


def sqlite_backend(_: pytest.FixtureRequest, tmp_path: Path) -> AbstractAsyncContextManager[Store]:
    return opened(SqliteStore(tmp_path / "store" / "ragbridge.db"))


def sqlite_ann_backend(
    _: pytest.FixtureRequest, tmp_path: Path
) -> AbstractAsyncContextManager[Store]:
    """The embedded store with its approximate index on from the first chunk."""
    from ragbridge.store.ann_index import AnnConfig

    ann = AnnConfig(min_chunks=1, merge_min=8)
    return opened(SqliteStore(tmp_path / "store" / "ragbridge.db", ann=ann))


def postgres_backend(request: pytest.FixtureRequest, _: Path) -> AbstractAsyncContextManager[Store]:
    from ragbridge.store.postgres import PostgresStore

    return opened(PostgresStore(request.getfixturevalue("postgres_url")))


BACKENDS: dict[str, StoreFactory] = {
    "sqlite": sqlite_backend,
    "sqlite-ann": sqlite_ann_backend,
    "postgres": postgres_backend,
}
BACKEND_MARKS: dict[str, pytest.MarkDecorator] = {"postgres": pytest.mark.postgres}


@pytest.fixture(params=[pytest.param(name, marks=BACKEND_MARKS.get(name, ())) for name in BACKENDS])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """An opened, empty store of each backend."""
    async with BACKENDS[request.param](request, tmp_path) as opened:
        yield opened
