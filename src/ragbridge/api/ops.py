"""Liveness, readiness, Prometheus metrics (who sees what: docs/hardening.md): `/ready` shows each
part's detail only to the admin key; `/metrics`, whose series carry key names and models, takes
`RAGBRIDGE_METRICS_KEY` (or the admin key) once one is set."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from ragbridge.api.deps import get_metrics, get_ragbridge, get_settings
from ragbridge.api.security import bearer_token, matches
from ragbridge.errors import RagbridgeError, Unauthorized
from ragbridge.llm.upstream import UpstreamClient
from ragbridge.store.base import Store

READY_PROBE_TIMEOUT = 2.0  # seconds each dependency gets to answer a readiness probe

router = APIRouter(tags=["ops"])
log = logging.getLogger(__name__)


@router.get("/health")
async def health() -> dict[str, Any]:
    """Alive: the process answers. Says nothing about dependencies (see `/ready`)."""
    return {"status": "ok"}


@router.get("/ready")
async def ready(request: Request) -> JSONResponse:
    """Ready: every dependency answers; 503 with each check's state when one does not."""
    bridge = get_ragbridge(request)
    checks = {
        "store": await _store_check(bridge.store),
        "upstream": await _upstream_check(bridge.upstream),
        "warm": request.app.state.warmth.check(bridge.store),  # `warming` is still ready
    }
    if bridge.local_model is not None:
        checks["local_model"] = bridge.local_model.status()  # "loading" until it is in memory
    is_ready = all(check["status"] not in ("error", "loading") for check in checks.values())
    for name, check in checks.items():
        if check["status"] == "error":
            log.warning("not ready: %s: %s", name, check.get("detail"))
    settings = get_settings(request)
    if settings.api_key is not None and not matches(bearer_token(request), settings.api_key):
        checks = {name: {"status": check["status"]} for name, check in checks.items()}
    body = {"status": "ready" if is_ready else "not ready", "checks": checks}
    return JSONResponse(body, status_code=200 if is_ready else 503)


async def _store_check(store: Store) -> dict[str, Any]:
    backend = type(store).__name__.removesuffix("Store").lower()
    started = time.perf_counter()
    try:
        await asyncio.wait_for(store.ping(), READY_PROBE_TIMEOUT)
    except Exception as exc:  # any failure means not ready; the detail says which
        detail = str(exc) or type(exc).__name__
        return {"status": "error", "backend": backend, "detail": detail}
    latency_ms = round((time.perf_counter() - started) * 1000, 1)
    return {"status": "ok", "backend": backend, "latency_ms": latency_ms}


async def _upstream_check(upstream: UpstreamClient | None) -> dict[str, Any]:
    if upstream is None:
        return {"status": "extractive", "detail": "No upstream LLM configured: extractive answers."}
    try:
        seconds = await upstream.probe(within=READY_PROBE_TIMEOUT)
    except RagbridgeError as exc:
        return {"status": "error", "url": upstream.base_url, "detail": exc.message}
    return {"status": "ok", "url": upstream.base_url, "latency_ms": round(seconds * 1000, 1)}


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format."}},
)
async def metrics(request: Request) -> Response:
    """Counters and histograms for Prometheus: requests, latency, tokens, retrieval, ingest."""
    settings, token = get_settings(request), bearer_token(request)
    allowed = settings.metrics_key is None or matches(token, settings.metrics_key)
    if not (allowed or matches(token, settings.api_key)):
        raise Unauthorized(
            "/metrics needs 'Authorization: Bearer <RAGBRIDGE_METRICS_KEY>' (or the admin key).",
            code="invalid_api_key" if token else "missing_api_key",
            headers={"WWW-Authenticate": "Bearer"},
        )
    registry = get_metrics(request)
    return Response(registry.render(), media_type=registry.content_type)
