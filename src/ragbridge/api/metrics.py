"""`GET /metrics`: the app's Prometheus registry in text format.

Open by default (Prometheus scrapes without credentials). With `RAGBRIDGE_METRICS_KEY` set it
takes `Authorization: Bearer <metrics key>` (or the admin key): series carry key names and
models, which not everyone who can reach the port should read.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from ragbridge.api.deps import get_metrics, get_settings
from ragbridge.api.security import bearer_token, matches
from ragbridge.errors import Unauthorized

router = APIRouter(tags=["ops"])


def _check_metrics_access(request: Request) -> None:
    settings = get_settings(request)
    token = bearer_token(request)
    if settings.metrics_key is None or matches(token, settings.metrics_key):
        return
    if matches(token, settings.api_key):
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
