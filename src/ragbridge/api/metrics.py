"""`GET /metrics`: the app's Prometheus registry in text format.

Open by default (Prometheus scrapes without credentials). With `RAGBRIDGE_METRICS_KEY` set it
takes `Authorization: Bearer <metrics key>` (or the admin key): series carry key names and
models, which not everyone who can reach the port should read.
"""

from __future__ import annotations

import secrets

from fastapi import APIRouter, Request, Response

from ragbridge.errors import Unauthorized
from ragbridge.service.telemetry import Metrics
from ragbridge.settings import Settings

router = APIRouter(tags=["ops"])


def get_metrics(request: Request) -> Metrics:
    metrics: Metrics = request.app.state.metrics
    return metrics


def bearer_token(request: Request) -> str | None:
    """The `Authorization: Bearer` token of a request, if it sent one."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def is_admin_token(settings: Settings, token: str | None) -> bool:
    """Whether `token` is the admin key (constant-time)."""
    if token is None or settings.api_key is None:
        return False
    return secrets.compare_digest(token.encode(), settings.api_key.get_secret_value().encode())


def _check_metrics_access(request: Request) -> None:
    settings: Settings = request.app.state.settings
    if settings.metrics_key is None:
        return
    token = bearer_token(request)
    expected = settings.metrics_key.get_secret_value().encode()
    if token is not None and secrets.compare_digest(token.encode(), expected):
        return
    if is_admin_token(settings, token):
        return
    raise Unauthorized(
        "/metrics needs 'Authorization: Bearer <RAGBRIDGE_METRICS_KEY>' (or the admin key).",
        code="invalid_api_key" if token else "missing_api_key",
        headers={"WWW-Authenticate": "Bearer"},
    )


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format."}},
)
async def metrics(request: Request) -> Response:
    """Counters and histograms for Prometheus: requests, latency, tokens, retrieval, ingest."""
    _check_metrics_access(request)
    registry = get_metrics(request)
    return Response(registry.render(), media_type=registry.content_type)
