"""The client for the user's OpenAI-compatible LLM: one connection pool, retries, mapped headers.
Retries (`ragbridge.retry`) stop once the upstream answered: an open stream is never repeated."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx

from ragbridge.endpoint import Endpoint, endpoint_fields
from ragbridge.errors import (
    InvalidRequest,
    NotFound,
    RagbridgeError,
    RateLimited,
    UpstreamError,
    UpstreamTimeout,
)
from ragbridge.llm.chunks import Chunk
from ragbridge.llm.models import ModelList
from ragbridge.llm.sse import iter_sse_chunks
from ragbridge.retry import NOT_SENT, cause, error_message, send
from ragbridge.service.telemetry import Metrics
from ragbridge.settings import Settings

_HEADER_REF = re.compile(r"\{request\.header\.([A-Za-z0-9_-]+)\}")
# A connection that broke after the request was sent and before any answer: the upstream may be
# generating (and billing), so a chat POST fails with 502 rather than being sent again. Stale
# pooled connections, the usual cause, are avoided instead: idle ones expire (`_KEEPALIVE_EXPIRY`)
# before common servers close them (uvicorn and Node 5 s, nginx 75 s).
_NO_ANSWER = (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)
_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS"})
_KEEPALIVE_EXPIRY = 2.0
_MODEL_LIST_READ_TIMEOUT = 10.0  # Open WebUI gives up on a model list after 10 s


def _reason(exc: Exception) -> str:
    """An exception's message, or its class name when it has none (httpx's often don't)."""
    return str(exc) or type(exc).__name__


@dataclass(frozen=True, slots=True, kw_only=True)
class UpstreamConfig(Endpoint):
    """What `UpstreamClient` needs: `UpstreamConfig.from_settings(settings)`, or built by hand."""

    headers: Mapping[str, str] = field(default_factory=dict)
    """Extra headers; `{request.header.X}` in a value copies that incoming header."""
    models_ttl: float = 30.0

    @classmethod
    def from_settings(cls, settings: Settings) -> UpstreamConfig:
        """The `RAGBRIDGE_UPSTREAM_*` settings."""
        return cls(
            **endpoint_fields(settings, "upstream"),
            headers=dict(settings.upstream_headers),
            models_ttl=settings.upstream_models_ttl,
        )


def resolve_headers(templates: Mapping[str, str], incoming: Mapping[str, str]) -> dict[str, str]:
    """`RAGBRIDGE_UPSTREAM_HEADERS` for one request, `{request.header.X}` filled from `incoming`;
    a header that refers to a missing incoming header is left out rather than sent empty."""
    resolved: dict[str, str] = {}
    for name, template in templates.items():
        if all(incoming.get(ref) is not None for ref in _HEADER_REF.findall(template)):
            value = _HEADER_REF.sub(lambda match: incoming.get(match.group(1), ""), template)
            resolved[name] = value.replace("\r", " ").replace("\n", " ")
    return resolved


def header_bytes(value: str) -> bytes:
    """A header value as bytes: copied ones byte for byte (ASGI decodes latin-1), others UTF-8."""
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        return value.encode("utf-8")


def status_error(response: httpx.Response, attempts: int) -> RagbridgeError:
    """The domain error for an upstream's failed answer, carrying its message."""
    status, message = response.status_code, error_message(response)
    if status == 429:
        retry_after = response.headers.get("retry-after")
        headers = {"Retry-After": retry_after} if retry_after else None
        return RateLimited(
            f"Upstream rate limit: {message}", code="upstream_rate_limited", headers=headers
        )
    if status == 404:
        return NotFound(f"Upstream: {message}", code="upstream_not_found")
    if status in (400, 413, 422):
        return InvalidRequest(f"Upstream rejected the request: {message}", status=status)
    if status in (401, 403):
        return UpstreamError(f"Upstream refused ragbridge's credentials ({status}): {message}")
    tries = f" after {attempts} attempts" if attempts > 1 else ""
    if status == 504:
        return UpstreamTimeout(f"Upstream timed out (504){tries}: {message}")
    return UpstreamError(f"Upstream failed with {status}{tries}: {message}")


@dataclass(slots=True)
class UpstreamReply:
    """An upstream's answer to a streaming chat request: an SSE stream, or (`completion`) JSON."""

    response: httpx.Response
    completion: dict[str, Any] | None = None

    async def chunks(self) -> AsyncIterator[Chunk]:
        """The upstream stream's chunks, each parsed once as it arrives; a broken stream raises."""
        received = self.response.aiter_bytes()
        try:
            async for chunk in iter_sse_chunks(received):
                yield chunk
            async for _ in received:  # read to the end, so the connection goes back to the pool
                pass
        except httpx.TimeoutException:
            raise UpstreamTimeout("Upstream stopped sending within the read timeout.") from None
        except httpx.HTTPError as exc:
            raise UpstreamError(f"Upstream stream broke off: {_reason(exc)}") from None


class UpstreamClient:
    """Talks to the upstream over one pooled `httpx.AsyncClient`: its own, or `client` (kept open
    on `aclose`: its owner closes it), e.g. one with `httpx.MockTransport` in tests."""

    def __init__(
        self,
        config: UpstreamConfig,
        metrics: Metrics | None = None,
        *,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.base_url = config.base_url
        self._config = config
        self._metrics = metrics or Metrics()
        self._fixed_headers = {"Accept-Encoding": "identity", **config.auth_headers()}
        self._timeout = config.timeout()
        self._owns_http = client is None
        self._http = client or httpx.AsyncClient(
            limits=httpx.Limits(
                max_connections=512,
                max_keepalive_connections=128,
                keepalive_expiry=_KEEPALIVE_EXPIRY,
            ),
        )
        self._chat_url = httpx.URL(f"{self.base_url}/chat/completions")  # parsed once: cheaper
        self._models_url = httpx.URL(f"{self.base_url}/models")
        self._models = ModelList(self._fetch_models, config.models_ttl)

    async def aclose(self) -> None:
        """Close the connection pool, if it is this client's own."""
        if self._owns_http:
            await self._http.aclose()

    async def list_models(self) -> list[dict[str, Any]]:
        """The upstream's models (`/models` entries), cached for `models_ttl` seconds."""
        return await self._models.get()

    async def resolve_model(self, requested: str) -> str:
        """The listed id that serves `requested` (see `ModelList.resolve`)."""
        return await self._models.resolve(requested)

    async def probe(self, within: float) -> float:
        """Seconds one `GET /models` takes; raises UpstreamError unless it answers `within` s."""
        started = time.perf_counter()
        await self._fetch_models(0, within)
        return time.perf_counter() - started

    async def complete(self, body: dict[str, Any], incoming: Mapping[str, str]) -> dict[str, Any]:
        """A non-streamed chat completion, `body` sent exactly as given."""
        async with self._request("POST", self._chat_url, body, incoming) as response:
            return await self._read_json(response)

    @asynccontextmanager
    async def open_stream(
        self, body: dict[str, Any], incoming: Mapping[str, str]
    ) -> AsyncIterator[UpstreamReply]:
        """A streaming chat completion, open once the upstream answered; closing it cancels it."""
        async with self._request("POST", self._chat_url, body, incoming) as response:
            if response.headers.get("content-type", "").startswith("text/event-stream"):
                yield UpstreamReply(response)
            else:  # a gateway that cannot stream: relay its JSON the moment it arrives
                yield UpstreamReply(response, await self._read_json(response))

    async def _fetch_models(
        self, retries: int | None, within: float | None = None
    ) -> list[dict[str, Any]]:
        read = min(self._config.read_timeout, within or _MODEL_LIST_READ_TIMEOUT)
        timeout = httpx.Timeout(read, connect=min(self._config.connect_timeout, read))
        async with self._request(
            "GET", self._models_url, None, {}, retries=retries, timeouts=timeout
        ) as response:
            body = await self._read_json(response)
        data = body.get("data")
        if not isinstance(data, list):
            raise UpstreamError("Upstream /models answered without a `data` list of models.")
        return [model for model in data if isinstance(model, dict) and model.get("id")]

    @asynccontextmanager
    async def _request(
        self,
        method: str,
        url: httpx.URL,
        body: dict[str, Any] | None,
        incoming: Mapping[str, str],
        *,
        retries: int | None = None,
        timeouts: httpx.Timeout | None = None,
    ) -> AsyncIterator[httpx.Response]:
        """A successful upstream response with its body unread, after retries; closed on exit."""
        headers = {**self._fixed_headers, **resolve_headers(self._config.headers, incoming)}
        request = self._http.build_request(
            method,
            url,
            json=body,
            headers={name.encode("latin-1"): header_bytes(v) for name, v in headers.items()},
            timeout=timeouts or self._timeout,
        )
        try:
            response, attempts = await send(
                self._http,
                request,
                self._config.retry,
                resend=method in _IDEMPOTENT,
                retries=retries,
                on_retry=lambda label, _: self._metrics.count_upstream_retry(label),
            )
        except httpx.HTTPError as exc:
            self._metrics.count_upstream_error(cause(exc))
            if isinstance(exc, NOT_SENT):
                raise UpstreamError(
                    f"Cannot reach the upstream LLM at {self.base_url}: {_reason(exc)}"
                ) from None
            if isinstance(exc, httpx.TimeoutException):
                raise UpstreamTimeout("Upstream did not answer within the read timeout.") from None
            if isinstance(exc, _NO_ANSWER):
                reason = _reason(exc)
                if method not in _IDEMPOTENT:
                    reason += " (not retried: it may have received the request)"
                raise UpstreamError(
                    f"The upstream LLM closed the connection without answering: {reason}."
                ) from None
            raise UpstreamError(f"Upstream request failed: {_reason(exc)}") from None
        if not response.is_success:
            self._metrics.count_upstream_error(str(response.status_code))
            raise status_error(response, attempts)
        try:
            yield response
        finally:
            with anyio.CancelScope(shield=True):
                await response.aclose()

    @staticmethod
    async def _read_json(response: httpx.Response) -> dict[str, Any]:
        try:
            await response.aread()
        except httpx.TimeoutException:
            raise UpstreamTimeout(
                "Upstream did not finish its answer within the read timeout."
            ) from None
        except httpx.HTTPError as exc:
            raise UpstreamError(f"Upstream answer broke off: {_reason(exc)}") from None
        try:
            body = response.json()
        except (ValueError, UnicodeDecodeError):
            raise UpstreamError(
                f"Upstream answered with something other than JSON: {response.text[:200]!r}"
            ) from None
        if not isinstance(body, dict):
            raise UpstreamError("Upstream answered with JSON that is not an object.")
        return body
