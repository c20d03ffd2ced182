"""Storage: the Store protocol, the embedded SQLite store and the PostgreSQL store.

Stores are plugins (`ragbridge.stores` entry points, see docs/plugins.md)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ragbridge import plugins
from ragbridge.store.base import Store
from ragbridge.store.builtin import SQLITE_FILENAME

if TYPE_CHECKING:
    from ragbridge.settings import Settings

EMBEDDED = "sqlite"
"""The plugin used when no database URL is set."""


def store_plugin(settings: Settings) -> str:
    """The plugin `settings` select: the one whose `schemes` hold the database URL's scheme,
    else the embedded SQLite store when no URL is set."""
    url = settings.database_url
    if not url:
        return EMBEDDED
    scheme = url.partition("://")[0].lower()
    registered = plugins.stores()
    claimed = plugins.claimant(registered, lambda plugin: scheme in plugin.schemes)
    if claimed:
        return claimed
    schemes = sorted({f"{s}://" for plugin in registered.values() for s in plugin.schemes})
    raise ValueError(f"RAGBRIDGE_DATABASE_URL must start with {' or '.join(schemes)}")


def create_store(settings: Settings) -> Store:
    """The store `settings` select (see `store_plugin`), not yet opened."""
    name = store_plugin(settings)
    return plugins.require(plugins.stores(), "ragbridge.stores", name).create(settings)


async def open_store(settings: Settings) -> Store:
    """The selected store, opened (schema created or migrated)."""
    store = create_store(settings)
    await store.open()
    return store


__all__ = ["SQLITE_FILENAME", "Store", "create_store", "open_store", "store_plugin"]
