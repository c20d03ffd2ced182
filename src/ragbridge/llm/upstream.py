"""The client for the user's OpenAI-compatible LLM: one connection pool, retries, mapped headers.

Retries (exponential backoff with jitter; `Retry-After` honoured on 429) cover connect errors, 429
and 5xx, and happen only while the upstream has not answered yet, so nothing was relayed to the
client. A chat POST whose connection breaks after it was sent is not retried (see `_NO_ANSWER`).
Once a stream is open it is relayed as it comes, never retried.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import random
import re
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import anyio
import httpx

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
from ragbridge.service.telemetry import Metrics
from ragbridge.settings import Settings

log = logging.getLogger(__name__)

_HEADER_REF = re.compile(r"\{request\.header\.([A-Za-z0-9_-]+)\}")
# The request never left: a refused or timed-out connect. Always safe to send again.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout)
# The connection broke after (part of) the request was written and before any answer byte. The
# upstream may have received it and be generating (and billing), so only idempotent requests are
# sent again; a chat POST fails with 502 instead. Stale pooled connections, the usual cause, are
# avoided rather than retried: idle connections expire (`_KEEPALIVE_EXPIRY`) before common
# servers close them (uvicorn and Node 5 s, nginx 75 s), and httpcore drops any connection the
# server already closed before reusing it.
_NO_ANSWER = (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)
_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS"})
_KEEPALIVE_EXPIRY = 2.0
_RETRY_AFTER_CAP = 60.0


def _reason(exc: Exception) -> str:
    """An exception's message, or its class name when it has none (httpx's often don't)."""
    return (
        str(exc) or type(exc).__name__
    )  # a longer Retry-After is not waited for: the client gets the 429


_MODEL_LIST_READ_TIMEOUT = 10.0  # Open WebUI gives up on a model list after 10 s
_FAILED_MODEL_LIST_TTL = 5.0  # after a failed model list fetch, chats skip the model check


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


def retry_after_seconds(value: str | None) -> float | None:
    """Seconds a `Retry-After` header asks for (delta-seconds or an HTTP date), if parseable."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def upstream_message(response: httpx.Response) -> str:
    """The upstream's own error message, from OpenAI's envelope or the first bytes of the body."""
    try:
        body = response.json()
    except (ValueError, UnicodeDecodeError):
        return response.text[:300].strip() or response.reason_phrase
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
        for value in (error, body.get("detail"), body.get("message")):
            if value:
                return str(value)
    return json.dumps(body)[:300]


def status_error(response: httpx.Response, attempts: int) -> RagbridgeError:
    """The domain error for an upstream's failed answer, carrying its message."""
    status, message = response.status_code, upstream_message(response)
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
    """Talks to `RAGBRIDGE_UPSTREAM_BASE_URL` over one pooled `httpx.AsyncClient`."""

    def __init__(self, settings: Settings, metrics: Metrics | None = None) -> None:
        if settings.upstream_base_url is None:
            raise ValueError("UpstreamClient needs settings.upstream_base_url")
        self.base_url = settings.upstream_base_url
        self._settings = settings
        self._metrics = metrics or Metrics()
        headers = {"Accept-Encoding": "identity"}
        if settings.upstream_api_key is not None:
            headers["Authorization"] = f"Bearer {settings.upstream_api_key.get_secret_value()}"
        self._http = httpx.AsyncClient(
            headers=headers,
            timeout=httpx.Timeout(
                connect=settings.upstream_connect_timeout,
                read=settings.upstream_read_timeout,
                write=settings.upstream_read_timeout,
                pool=settings.upstream_read_timeout,
            ),
            limits=httpx.Limits(
                max_connections=512,
                max_keepalive_connections=128,
                keepalive_expiry=_KEEPALIVE_EXPIRY,
            ),
        )
        self._chat_url = httpx.URL(f"{self.base_url}/chat/completions")  # parsed once: cheaper
        self._models_url = httpx.URL(f"{self.base_url}/models")
        self._random = random.Random()
        self._models: list[dict[str, Any]] | None = None
        self._models_expire = 0.0
        self._models_failed_until = 0.0
        self._model_ids: tuple[list[dict[str, Any]], frozenset[str]] | None = None
        self._models_lock = asyncio.Lock()

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    def headers_for(self, incoming: Mapping[str, str]) -> dict[bytes, bytes]:
        """The configured extra headers for one request, filled from its incoming headers."""
        return {
            name.encode("latin-1"): header_bytes(value)
            for name, value in resolve_headers(self._settings.upstream_headers, incoming).items()
        }

    async def list_models(self) -> list[dict[str, Any]]:
        """The upstream's models (`/models` entries), cached for `upstream_models_ttl` seconds."""
        return await self._cached_models(retries=self._settings.upstream_max_retries)

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

    async def _cached_models(self, *, retries: int) -> list[dict[str, Any]]:
        if self._models is not None and time.monotonic() < self._models_expire:
            return self._models
        async with self._models_lock:
            if self._models is None or time.monotonic() >= self._models_expire:
                self._models = await self._fetch_models(retries=retries)
                self._models_expire = time.monotonic() + self._settings.upstream_models_ttl
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
        self, *, retries: int, within: float | None = None
    ) -> list[dict[str, Any]]:
        read = min(self._settings.upstream_read_timeout, within or _MODEL_LIST_READ_TIMEOUT)
        connect = min(self._settings.upstream_connect_timeout, read)
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
        max_retries = self._settings.upstream_max_retries if retries is None else retries
        request = self._http.build_request(
            method,
            url,
            json=body,
            headers=self.headers_for(incoming),
            timeout=timeouts or httpx.USE_CLIENT_DEFAULT,
        )
        attempt = 0
        while True:
            try:
                response = await self._http.send(request, stream=True)
            except (*_NOT_SENT, *_NO_ANSWER) as exc:
                sent = not isinstance(exc, _NOT_SENT)
                cause = "transport" if sent else "connect"
                if attempt >= max_retries or (sent and method not in _IDEMPOTENT):
                    self._metrics.count_upstream_error(cause)
                    reason = _reason(exc)
                    if sent:
                        raise UpstreamError(
                            f"The upstream LLM closed the connection without answering: {reason}"
                            " (not retried: it may have received the request)."
                        ) from None
                    raise UpstreamError(
                        f"Cannot reach the upstream LLM at {self.base_url}: {reason}"
                    ) from None
                delay = self._backoff(attempt)
            except httpx.TimeoutException:
                self._metrics.count_upstream_error("timeout")
                raise UpstreamTimeout("Upstream did not answer within the read timeout.") from None
            except httpx.HTTPError as exc:
                self._metrics.count_upstream_error("transport")
                raise UpstreamError(f"Upstream request failed: {_reason(exc)}") from None
            else:
                if response.is_success:
                    return response
                await response.aread()
                await response.aclose()
                status = response.status_code
                cause = str(status)
                if attempt >= max_retries or not (status == 429 or status >= 500):
                    self._metrics.count_upstream_error(cause)
                    raise status_error(response, attempt + 1)
                asked = retry_after_seconds(response.headers.get("retry-after"))
                if asked is not None and asked > _RETRY_AFTER_CAP:
                    self._metrics.count_upstream_error(cause)
                    raise status_error(response, attempt + 1)
                delay = asked if asked is not None else self._backoff(attempt)
            self._metrics.count_upstream_retry(cause)
            log.info("upstream %s %s: retry %d in %.2fs", method, url.path, attempt + 1, delay)
            attempt += 1
            await asyncio.sleep(delay)

    def _backoff(self, attempt: int) -> float:
        """Exponential backoff with equal jitter: half the step fixed, half random."""
        step = min(
            self._settings.upstream_retry_max_delay,
            self._settings.upstream_retry_base_delay * 2.0**attempt,
        )
        return step / 2 + self._random.uniform(0, step / 2)

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
