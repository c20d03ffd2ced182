"""Plugins: loaders, embedders, rerankers and stores registered as entry points in the `GROUPS`
(ragbridge's built-ins too; see docs/plugins.md). The entry point's name is the plugin's name, its
value one of the records below; a plugin replaces a built-in of the same name.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import TYPE_CHECKING, Any, TypeVar

from ragbridge.errors import RagbridgeError

if TYPE_CHECKING:
    from ragbridge.embeddings.base import Embedder
    from ragbridge.ingest.documents import LoadedDocument
    from ragbridge.ingest.limits import IngestLimits
    from ragbridge.retrieval.rerank import Reranker
    from ragbridge.settings import Settings
    from ragbridge.store.base import Store

log = logging.getLogger(__name__)

BUILTIN_DISTRIBUTION = "ragbridge"


@dataclass(frozen=True)
class LoaderPlugin:
    """A file format: the extensions it claims and a reader of a file's bytes."""

    extensions: tuple[str, ...]
    """Lower-case, with the dot (`.hwpx`); a folder walk ingests files with these."""
    read: Callable[[bytes, str, IngestLimits], list[LoadedDocument]]
    """`read(data, source, limits)`: documents, or `DocumentError` naming `source`."""


@dataclass(frozen=True)
class EmbedderPlugin:
    """Makes an `Embedder` from settings; chosen when `embedding_model` is one of `models`."""

    create: Callable[[Settings], Embedder]
    models: tuple[str, ...] = ()


@dataclass(frozen=True)
class RerankerPlugin:
    """Makes a `Reranker` from settings (None: nothing to rerank with); chosen by `models`."""

    create: Callable[[Settings], Reranker | None]
    models: tuple[str, ...] = ()


@dataclass(frozen=True)
class StorePlugin:
    """Makes a `Store` (not yet opened) from settings; chosen by the database URL's scheme."""

    create: Callable[[Settings], Store]
    schemes: tuple[str, ...] = ()


GROUPS: dict[str, type[Any]] = {
    "ragbridge.loaders": LoaderPlugin,
    "ragbridge.embedders": EmbedderPlugin,
    "ragbridge.rerankers": RerankerPlugin,
    "ragbridge.stores": StorePlugin,
}

PluginT = TypeVar("PluginT")


class PluginError(RagbridgeError):
    """A plugin that cannot be loaded, or a plugin that is needed and not registered."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code="plugin_error")


def loaders() -> Mapping[str, LoaderPlugin]:
    """Loader plugins by format name."""
    return _load_group("ragbridge.loaders")


def embedders() -> Mapping[str, EmbedderPlugin]:
    """Embedder plugins by name."""
    return _load_group("ragbridge.embedders")


def rerankers() -> Mapping[str, RerankerPlugin]:
    """Reranker plugins by name."""
    return _load_group("ragbridge.rerankers")


def stores() -> Mapping[str, StorePlugin]:
    """Store plugins by name."""
    return _load_group("ragbridge.stores")


def require(plugins: Mapping[str, PluginT], group: str, name: str) -> PluginT:
    """The plugin `name` of `group`, or a `PluginError` that says what is registered."""
    plugin = plugins.get(name)
    if plugin is None:
        known = ", ".join(sorted(plugins)) or "none"
        raise PluginError(f"no {group} plugin named {name!r} (registered: {known})")
    return plugin


def claimant(plugins: Mapping[str, PluginT], claims: Callable[[PluginT], bool]) -> str | None:
    """The plugin whose claim holds; a third party's claim wins over a built-in's."""
    names = [name for name, plugin in plugins.items() if claims(plugin)]
    return names[-1] if names else None


@functools.cache
def _load_group(group: str) -> Mapping[str, Any]:
    """Every entry point of `group`, loaded: ragbridge's built-ins first, so that another
    distribution's plugin of the same name replaces the built-in."""
    found = sorted(entry_points(group=group), key=lambda ep: (not _builtin(ep), _dist(ep)))
    if not any(_builtin(ep) for ep in found):  # run from a checkout never installed, or stale
        raise PluginError(
            f"ragbridge's built-in {group} are not registered: its installed metadata is missing "
            "or older than pyproject.toml; run `pip install -e .` (or `make install`)"
        )
    plugins: dict[str, Any] = {}
    for ep in found:
        if ep.name in plugins:
            log.info("plugin %s from %s replaces an earlier %s", ep.name, _dist(ep), group)
        plugins[ep.name] = _load(ep, group, GROUPS[group])
    return plugins


def _load(ep: EntryPoint, group: str, kind: type[Any]) -> Any:
    where = f"plugin {ep.name!r} ({group}, {ep.value} from {_dist(ep)})"
    try:
        value = ep.load()
    except Exception as exc:  # anything a plugin's import raises
        log.error("%s failed to load: %s: %s", where, type(exc).__name__, exc)
        raise PluginError(f"{where} failed to load: {type(exc).__name__}: {exc}") from exc
    if not isinstance(value, kind):
        message = f"{where} is a {type(value).__name__}, not a ragbridge.plugins.{kind.__name__}"
        log.error("%s", message)
        raise PluginError(message)
    return value


def _dist(ep: EntryPoint) -> str:
    return f"{ep.dist.name} {ep.dist.version}" if ep.dist else "an unknown distribution"


def _builtin(ep: EntryPoint) -> bool:
    return ep.dist is not None and ep.dist.name == BUILTIN_DISTRIBUTION


def clear_cache() -> None:
    """Forget the loaded groups (tests that change `sys.path`)."""
    _load_group.cache_clear()
