"""Stores opened for a block: `async with opened(SqliteStore(path)) as store:`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TypeVar

from ragbridge.store.base import Store

S = TypeVar("S", bound=Store)


@asynccontextmanager
async def opened(store: S) -> AsyncIterator[S]:
    """`store`, opened for the block and closed after it."""
    await store.open()
    try:
        yield store
    finally:
        await store.close()
