"""`GET /metrics`: the app's Prometheus registry in text format."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from ragbridge.metrics import Metrics

router = APIRouter(tags=["ops"])


def get_metrics(request: Request) -> Metrics:
    metrics: Metrics = request.app.state.metrics
    return metrics


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format."}},
)
async def metrics(request: Request) -> Response:
    """Counters and histograms for Prometheus: requests, latency, tokens, retrieval, ingest."""
    registry = get_metrics(request)
    return Response(registry.render(), media_type=registry.content_type)
