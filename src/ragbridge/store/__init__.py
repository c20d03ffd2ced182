"""Storage: the Store protocol, the embedded SQLite store and the PostgreSQL store."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ragbridge.store.base import Store

if TYPE_CHECKING:
    from ragbridge.settings import Settings

SQLITE_FILENAME = "ragbridge.db"


def create_store(settings: Settings) -> Store:
    """The store `settings` select, not yet opened: PostgreSQL for a postgresql:// URL, else
    the embedded SQLite file in the data dir."""
    url = settings.database_url
    if url and url.startswith(("postgresql://", "postgres://")):
        from ragbridge.store.postgres import PostgresStore  # only with the [postgres] extra

        store: Store = PostgresStore(url, wait_timeout=settings.database_wait_timeout)
        return store
    if url:
        raise ValueError("RAGBRIDGE_DATABASE_URL must start with postgresql://")
    from ragbridge.store.ann_index import AnnConfig
    from ragbridge.store.sqlite import SqliteStore

    ann = AnnConfig(
        enabled=settings.ann_enabled,
        min_chunks=settings.ann_min_chunks,
        exact_filter_limit=settings.ann_exact_filter_limit,
        ef_search=settings.ann_ef_search,
    )
    return SqliteStore(
        settings.data_dir / SQLITE_FILENAME, vector_cache_bytes=settings.vector_cache_bytes, ann=ann
    )


async def open_store(settings: Settings) -> Store:
    """The selected store, opened (schema created or migrated)."""
    store = create_store(settings)
    await store.open()
    return store


__all__ = ["SQLITE_FILENAME", "Store", "create_store", "open_store"]
