"""A deadline for request headers against slowloris: uvicorn's idle timer runs only after a response
and any byte disarms it. Headers must be complete `header_timeout` seconds after a connection opens
or a request's first byte arrives, else the connection is closed."""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class _GuardedHttpTools(HttpToolsProtocol):
    header_timeout = 10.0
    _header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_timer()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm_header_timer()

    def on_headers_complete(self) -> None:
        self._disarm_header_timer()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_timer()
        super().connection_lost(exc)

    def _arm_header_timer(self) -> None:
        if self._header_timer is None:
            self._header_timer = self.loop.call_later(self.header_timeout, self._headers_late)

    def _disarm_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_late(self) -> None:
        self._header_timer = None
        if self.cycle is not None and not self.cycle.response_complete:
            self._arm_header_timer()  # a pipelined request waits behind a running one
            return
        if not self.transport.is_closing():
            self.transport.close()


def guarded_http_protocol(header_timeout: float) -> type[Any]:
    """uvicorn's httptools protocol with a `header_timeout` deadline for request headers."""
    return type("GuardedHttpTools", (_GuardedHttpTools,), {"header_timeout": header_timeout})
