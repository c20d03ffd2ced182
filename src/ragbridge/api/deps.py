"""Typed accessors for the services on `app.state`, for route dependencies: the `Ragbridge` that
`create_app` opens (`app.state.ragbridge`), and what only the server has beside it."""

from __future__ import annotations

from typing import cast

from fastapi import Request

from ragbridge.bridge import Ragbridge
from ragbridge.service.rate_limits import RateLimiter
from ragbridge.service.telemetry import Metrics
from ragbridge.settings import Settings
from ragbridge.store.base import Store


def get_ragbridge(request: Request) -> Ragbridge:
    """The app's `Ragbridge` (see `ragbridge.open`)."""
    return cast(Ragbridge, request.app.state.ragbridge)


def get_settings(request: Request) -> Settings:
    return cast(Settings, request.app.state.settings)


def get_metrics(request: Request) -> Metrics:
    return cast(Metrics, request.app.state.metrics)


def get_rate_limiter(request: Request) -> RateLimiter:
    return cast(RateLimiter, request.app.state.rate_limiter)


def get_store(request: Request) -> Store:
    return get_ragbridge(request).store
