"""Operations routes: liveness, readiness, metrics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

router = APIRouter(tags=["ops"])


@router.get("/health")
async def health() -> dict[str, Any]:
    """Alive: the process answers. Says nothing about dependencies (see `/ready`)."""
    return {"status": "ok"}
