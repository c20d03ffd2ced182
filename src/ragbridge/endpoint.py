"""Where a remote HTTP API is and how to call it: the shared part of the upstream LLM's, the
remote embeddings' and the rerank endpoint's configs (each adds its own fields)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import httpx

from ragbridge.retry import RetryPolicy
from ragbridge.settings import Settings


@dataclass(frozen=True, slots=True, kw_only=True)
class Endpoint:
    """A base URL (…/v1), its bearer key, timeouts and the retry policy."""

    base_url: str
    api_key: str | None = field(default=None, repr=False)
    connect_timeout: float = 5.0
    read_timeout: float = 300.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    def timeout(self) -> httpx.Timeout:
        """`read_timeout` to read, write or wait for a pooled connection; `connect_timeout` else."""
        return httpx.Timeout(self.read_timeout, connect=self.connect_timeout)


def endpoint_fields(
    settings: Settings, service: Literal["upstream", "embedding", "rerank"]
) -> dict[str, Any]:
    """`RAGBRIDGE_<SERVICE>_BASE_URL` and `_API_KEY`, with the upstream's timeouts and retries
    (`RAGBRIDGE_UPSTREAM_MAX_RETRIES`, `_RETRY_BASE_DELAY`, `_RETRY_MAX_DELAY`)."""
    base_url: str | None = getattr(settings, f"{service}_base_url")
    if not base_url:
        raise ValueError(f"RAGBRIDGE_{service.upper()}_BASE_URL is not set.")
    key = getattr(settings, f"{service}_api_key")
    return {
        "base_url": base_url,
        "api_key": key.get_secret_value() if key is not None else None,
        "connect_timeout": settings.upstream_connect_timeout,
        "read_timeout": settings.upstream_read_timeout,
        "retry": RetryPolicy(
            max(0, settings.upstream_max_retries),
            settings.upstream_retry_base_delay,
            settings.upstream_retry_max_delay,
        ),
    }
