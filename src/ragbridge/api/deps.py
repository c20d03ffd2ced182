"""Typed accessors for the services `create_app` puts on `app.state`, for route dependencies."""

from __future__ import annotations

from fastapi import Request

from ragbridge.embeddings.base import Embedder
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
