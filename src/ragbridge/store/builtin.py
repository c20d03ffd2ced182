"""ragbridge's own stores as plugins (registered in pyproject.toml under `ragbridge.stores`, the
same way a third-party store is)."""

from __future__ import annotations

from ragbridge.plugins import StorePlugin
from ragbridge.settings import Settings
from ragbridge.store.base import Store

SQLITE_FILENAME = "ragbridge.db"


def _sqlite(settings: Settings) -> Store:
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


def _postgres(settings: Settings) -> Store:
    from ragbridge.store.postgres import PostgresStore  # only with the [postgres] extra

    if not settings.database_url:
        raise ValueError("the PostgreSQL store needs RAGBRIDGE_DATABASE_URL")
    return PostgresStore(settings.database_url, wait_timeout=settings.database_wait_timeout)


SQLITE = StorePlugin(_sqlite)
"""The embedded default: one file in the data dir, chosen when no database URL is set."""
POSTGRES = StorePlugin(_postgres, schemes=("postgresql", "postgres"))
