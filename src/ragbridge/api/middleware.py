"""The request envelope, one pure ASGI middleware (cheap on streams): request id, 503 while
draining, 413 past `max_request_bytes` (multipart uploads are limited on their route), metrics and
one log line per request from what routes leave on `request.state`; never `Authorization`."""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import MutableMapping
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ragbridge.api.envelope import error_response
from ragbridge.api.origin import HostGuard
from ragbridge.api.shutdown import ShutdownGate
from ragbridge.service.telemetry import Metrics
from ragbridge.settings import Settings

log = logging.getLogger("ragbridge.access")

_REQUEST_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")
_OPEN_WHILE_DRAINING = frozenset({"/health", "/metrics"})


class _TooLarge(Exception):
    pass


class RequestContextMiddleware:
    """See the module docstring."""

    def __init__(
        self, app: ASGIApp, *, settings: Settings, metrics: Metrics, gate: ShutdownGate
    ) -> None:
        self.app = app
        self.settings = settings
        self.metrics = metrics
        self.gate = gate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        headers = Headers(scope=scope)
        request_id = headers.get("x-request-id", "")  # the client's, if safe in logs
        if not _REQUEST_ID.fullmatch(request_id):
            request_id = uuid.uuid4().hex
        state: MutableMapping[str, Any] = scope.setdefault("state", {})
        state["request_id"] = request_id
        state["started_at"] = started  # perf_counter(), for time to first token
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message)["X-Request-ID"] = request_id
            await send(message)

        self.gate.enter()
        self.metrics.in_flight.inc()
        try:
            if self.gate.draining and scope["path"] not in _OPEN_WHILE_DRAINING:
                await error_response(
                    "The server is shutting down; retry on another replica or in a moment.",
                    503,
                    code="shutting_down",
                    headers={"Connection": "close", "Retry-After": "1"},
                )(scope, receive, send_with_id)
                return
            try:
                app_receive = await self._bounded_receive(headers, receive)
            except _TooLarge:
                limit = self.settings.max_request_bytes
                message = (
                    f"Request body is larger than {limit} bytes (RAGBRIDGE_MAX_REQUEST_BYTES)."
                )
                too_large = error_response(message, 413, code="request_too_large")
                await too_large(scope, receive, send_with_id)
                return
            if app_receive is None:
                status = 499  # the client went away before sending its body
                return
            await self.app(scope, app_receive, send_with_id)
        finally:
            self.gate.leave()
            self.metrics.in_flight.dec()
            self._record(scope, state, status, time.perf_counter() - started)

    async def _bounded_receive(self, headers: Headers, receive: Receive) -> Receive | None:
        """Read a non-multipart body up to the limit and replay it (None if the client left);
        multipart passes through."""
        if headers.get("content-type", "").lower().startswith("multipart/"):
            return receive
        limit = self.settings.max_request_bytes
        declared = headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            raise _TooLarge
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            body += message.get("body", b"")
            if len(body) > limit:
                raise _TooLarge
            if not message.get("more_body", False):
                break
        pending: list[Message] = [{"type": "http.request", "body": bytes(body)}]

        async def replay() -> Message:
            return pending.pop() if pending else await receive()

        return replay

    def _record(
        self, scope: Scope, state: MutableMapping[str, Any], status: int, seconds: float
    ) -> None:
        route = getattr(scope.get("route"), "path", None) or "unmatched"
        model = state.get("model") or ""
        method = scope["method"]
        # Only models that were served (status < 400) label metrics; typos would not bound.
        self.metrics.observe_request(method, route, status, model if status < 400 else "", seconds)
        principal = state.get("principal")
        usage = state.get("usage")
        fields: dict[str, Any] = {
            "request_id": state["request_id"],
            "key": getattr(principal, "name", None),
            "method": method,
            "route": route,
            "path": scope["path"],
            "model": model[:200] or None,
            "status": status,
            "latency_ms": round(seconds * 1000, 1),
            "tokens_in": usage[0] if usage else None,
            "tokens_out": usage[1] if usage else None,
        }
        if self.settings.log_user_text and state.get("user_text"):
            fields["user_text"] = state["user_text"]
        level = logging.WARNING if status >= 500 else logging.INFO
        log.log(level, "request", extra={"fields": fields})


def install_middleware(
    app: FastAPI, settings: Settings, metrics: Metrics, gate: ShutdownGate
) -> None:
    """Host guard innermost, request envelope around it, CORS outside (so errors carry CORS
    headers too)."""
    app.add_middleware(HostGuard, settings=settings)
    app.add_middleware(RequestContextMiddleware, settings=settings, metrics=metrics, gate=gate)
    if settings.cors_origins:
        wildcard = "*" in settings.cors_origins
        app.add_middleware(
            CORSMiddleware,
            allow_origins=["*"] if wildcard else settings.cors_origins,
            # Browsers refuse "*" together with credentials (cookies): a wildcard gets none,
            # listed origins get them. Bearer keys sent by scripts work either way.
            allow_credentials=not wildcard,
            allow_methods=["*"],
            allow_headers=["*"],
            expose_headers=["X-Request-ID", "Retry-After"],
        )
