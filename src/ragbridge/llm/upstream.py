"""The client for the user's OpenAI-compatible LLM: one connection pool, retries, mapped headers.

Retries follow `ragbridge.retry`: connect errors, 429 and 5xx, only while the upstream has not
answered yet, so nothing was relayed to the client. A chat POST whose connection breaks after it
was sent is not retried; `GET /models` is. Once a stream is open it is relayed as it comes, never
retried.
"""

from __future__ import annotations

import asyncio
import logging
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
from ragbridge.llm.models import match_model
from ragbridge.llm.sse import iter_sse_chunks
from ragbridge.retry import NOT_SENT, cause, error_message, send
from ragbridge.service.telemetry import Metrics
from ragbridge.settings import Settings

log = logging.getLogger(__name__)

_HEADER_REF = re.compile(r"\{request\.header\.([A-Za-z0-9_-]+)\}")
# A connection that broke after the request was written and before any answer byte: the
# upstream may have received it and be generating (and billing), so only idempotent requests are
# sent again; a chat POST fails with 502 instead. Stale pooled connections, the usual cause, are
# avoided rather than retried: idle connections expire (`_KEEPALIVE_EXPIRY`) before common
# servers close them (uvicorn and Node 5 s, nginx 75 s), and httpcore drops any connection the
# server already closed before reusing it.
_NO_ANSWER = (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)
_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS"})
_KEEPALIVE_EXPIRY = 2.0


def _reason(exc: Exception) -> str:
    """An exception's message, or its class name when it has none (httpx's often don't)."""
    return str(exc) or type(exc).__name__


_MODEL_LIST_READ_TIMEOUT = 10.0  # Open WebUI gives up on a model list after 10 s
_FAILED_MODEL_LIST_TTL = 5.0  # after a failed model list fetch, chats skip the model check


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
    """`RAGBRIDGE_UPSTREAM_HEADERS` for one request, `{request.header.X}` filled from `incoming`.

    A header whose referenced incoming header is missing is left out rather than sent empty.
    """
    resolved: dict[str, str] = {}
    for name, template in templates.items():
        missing = False

        def fill(match: re.Match[str]) -> str:
            nonlocal missing
            value = incoming.get(match.group(1))
            if value is None:
                missing = True
                return ""
            return value

        value = _HEADER_REF.sub(fill, template)
        if not missing:
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


class UpstreamReply:
    """An upstream's answer to a streaming chat request: an SSE stream, or (`completion`) JSON."""

    def __init__(self, response: httpx.Response, completion: dict[str, Any] | None) -> None:
        self._response = response
        self.completion = completion

    async def chunks(self) -> AsyncIterator[Chunk]:
        """The upstream stream's chunks, each parsed once as it arrives; a broken stream raises."""
        received = self._response.aiter_bytes()
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
        fixed = {"Accept-Encoding": "identity", **config.auth_headers()}
        self._fixed_headers = {k.encode("latin-1"): header_bytes(v) for k, v in fixed.items()}
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
        self._models: list[dict[str, Any]] | None = None
        self._models_expire = 0.0
        self._models_failed_until = 0.0
        self._model_ids: tuple[list[dict[str, Any]], frozenset[str]] | None = None
        self._models_lock = asyncio.Lock()

    async def aclose(self) -> None:
        """Close the connection pool, if it is this client's own."""
        if self._owns_http:
            await self._http.aclose()

    def headers_for(self, incoming: Mapping[str, str]) -> dict[bytes, bytes]:
        """The configured extra headers for one request, filled from its incoming headers."""
        return {
            name.encode("latin-1"): header_bytes(value)
            for name, value in resolve_headers(self._config.headers, incoming).items()
        }

    async def list_models(self) -> list[dict[str, Any]]:
        """The upstream's models (`/models` entries), cached for `models_ttl` seconds."""
        return await self._cached_models(retries=None)

    async def known_model_ids(self) -> frozenset[str] | None:
        """Ids the upstream serves, or None when its list cannot be had (then chats go through)."""
        if time.monotonic() < self._models_failed_until:
            return None
        try:
            models = await self._cached_models(retries=0)
        except RagbridgeError as exc:
            log.warning("upstream model list unavailable, not checking model ids: %s", exc.message)
            self._models_failed_until = time.monotonic() + _FAILED_MODEL_LIST_TTL
            return None
        if self._model_ids is None or self._model_ids[0] is not models:
            self._model_ids = (models, frozenset(str(model["id"]) for model in models))
        return self._model_ids[1]

    async def resolve_model(self, requested: str) -> str:
        """The listed id that serves `requested` (`llama3.2` -> `llama3.2:latest`, see
        `match_model`), or `requested` itself when the list cannot be had (the upstream decides).
        Raises NotFound naming the model when the upstream lists nothing that matches."""
        known = await self.known_model_ids()
        if known is None or requested in known:
            return requested
        listed = [str(model["id"]) for model in (self._model_ids or ([], None))[0]]
        if (found := match_model(requested, listed)) is not None:
            return found
        shown = ", ".join(listed[:10]) + (", ..." if len(listed) > 10 else "")
        raise NotFound(
            f"The model '{requested}' does not exist upstream (it lists: {shown or 'nothing'}).",
            param="model",
            code="model_not_found",
        )

    async def _cached_models(self, *, retries: int | None) -> list[dict[str, Any]]:
        if self._models is not None and time.monotonic() < self._models_expire:
            return self._models
        async with self._models_lock:
            if self._models is None or time.monotonic() >= self._models_expire:
                self._models = await self._fetch_models(retries=retries)
                self._models_expire = time.monotonic() + self._config.models_ttl
            return self._models

    async def probe(self, within: float) -> float:
        """Seconds one `GET /models` takes; raises UpstreamError unless it answers `within` s."""
        started = time.perf_counter()
        await self._fetch_models(retries=0, within=within)
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
            content_type = response.headers.get("content-type", "")
            if content_type.startswith("text/event-stream"):
                yield UpstreamReply(response, None)
            else:  # a gateway that cannot stream: relay its JSON the moment it arrives
                yield UpstreamReply(response, await self._read_json(response))

    async def _fetch_models(
        self, *, retries: int | None, within: float | None = None
    ) -> list[dict[str, Any]]:
        read = min(self._config.read_timeout, within or _MODEL_LIST_READ_TIMEOUT)
        connect = min(self._config.connect_timeout, read)
        limits = httpx.Timeout(read, connect=connect)
        async with self._request(
            "GET", self._models_url, None, {}, retries=retries, timeouts=limits
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
        response = await self._send_with_retries(method, url, body, incoming, retries, timeouts)
        try:
            yield response
        finally:
            with anyio.CancelScope(shield=True):
                await response.aclose()

    async def _send_with_retries(
        self,
        method: str,
        url: httpx.URL,
        body: dict[str, Any] | None,
        incoming: Mapping[str, str],
        retries: int | None,
        timeouts: httpx.Timeout | None,
    ) -> httpx.Response:
        request = self._http.build_request(
            method,
            url,
            json=body,
            headers={**self._fixed_headers, **self.headers_for(incoming)},
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
            label = cause(exc)
            self._metrics.count_upstream_error(label)
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
        return response

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
