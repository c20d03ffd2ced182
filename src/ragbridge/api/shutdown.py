"""Graceful shutdown: on SIGTERM `DrainingServer` answers new requests 503 (`ShutdownGate`) while
still listening, and lets those in flight finish for up to `shutdown_timeout` before uvicorn stops
as usual (alone, it would stop listening at once)."""

from __future__ import annotations

import asyncio
import logging
import socket

import uvicorn
from fastapi import FastAPI

from ragbridge.api.slow_clients import guarded_http_protocol
from ragbridge.settings import Settings

log = logging.getLogger(__name__)


class ShutdownGate:
    """Counts requests in flight and says whether new ones are still welcome."""

    def __init__(self) -> None:
        self.draining = False
        self.in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def enter(self) -> None:
        self.in_flight += 1
        self._idle.clear()

    def leave(self) -> None:
        self.in_flight -= 1
        if self.in_flight == 0:
            self._idle.set()

    async def drain(self, seconds: float) -> bool:
        """Refuse new requests from now on; True if the ones in flight finished in time."""
        self.draining = True
        try:
            async with asyncio.timeout(seconds):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True


class DrainingServer(uvicorn.Server):
    """uvicorn server that drains the app (still listening) before it closes connections."""

    def __init__(self, config: uvicorn.Config, gate: ShutdownGate, drain_timeout: float):
        super().__init__(config)
        self.gate = gate
        self.drain_timeout = drain_timeout

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        log.info(
            "draining: new requests get 503",
            extra={"fields": {"in_flight": self.gate.in_flight, "timeout": self.drain_timeout}},
        )
        if not await self.gate.drain(self.drain_timeout):
            log.warning(
                "drain timed out; cancelling the rest",
                extra={"fields": {"in_flight": self.gate.in_flight}},
            )
        await super().shutdown(sockets)


def server_config(app: FastAPI, settings: Settings) -> uvicorn.Config:
    """How `ragbridge serve` runs `app` under uvicorn (also used by tests of slow clients)."""
    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        access_log=False,  # the request middleware writes one structured line per request
        timeout_graceful_shutdown=2,  # after the drain: what is left gets cancelled
        http=guarded_http_protocol(settings.header_timeout),
        timeout_keep_alive=settings.idle_timeout,
    )


def run_server(app: FastAPI, settings: Settings) -> None:
    """Serve `app` on settings.host:port until SIGINT/SIGTERM, then drain and stop."""
    gate: ShutdownGate = app.state.shutdown_gate
    DrainingServer(server_config(app, settings), gate, settings.shutdown_timeout).run()
