"""The upstream work of one client request, cancelled within moments of the client leaving, wherever
that happens: `RelayStream` for a streamed turn (its read-ahead and its ASGI response),
`until_disconnect` for a non-streamed answer."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Awaitable
from typing import TypeVar

import anyio
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from ragbridge.api.envelope import error_body
from ragbridge.errors import RagbridgeError
from ragbridge.llm.chunks import Chunk
from ragbridge.llm.prefetch import Prefetch
from ragbridge.llm.sse import DONE, KEEPALIVE, encode_event

log = logging.getLogger(__name__)

T = TypeVar("T")

SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]
CLIENT_GONE = 499  # nginx's "client closed request", for logs and metrics only


class ClientGone(Exception):
    """The client closed its connection before the answer was sent."""


async def _wait_for_disconnect(receive: Receive) -> None:
    """Return once the client's connection is gone (the request body was already read)."""
    while (await receive())["type"] != "http.disconnect":
        pass


class RelayStream(Response):
    """One streamed answer: its read-ahead, the client watch, and the SSE response itself."""

    def __init__(  # no Response.__init__: this response sends its own head and body
        self, chunks: AsyncGenerator[Chunk, None], receive: Receive, interval: float
    ) -> None:
        self.status_code = 200
        self.background = None
        self.payloads: Prefetch[Chunk] = Prefetch(chunks)
        self.interval = interval
        self.gone = asyncio.Event()
        self._watch = asyncio.ensure_future(self._watch_client(receive))
        self._closed = False

    async def _watch_client(self, receive: Receive) -> None:
        await _wait_for_disconnect(receive)
        self.gone.set()
        with anyio.CancelScope(shield=True):
            await self.payloads.aclose()  # cancels the upstream call now, not at the next send

    async def first(self) -> None:
        """Wait (up to `interval`) for the first payload; raise it if it is an error, or
        `ClientGone` if the client leaves meanwhile, closing everything."""
        try:
            waiter = asyncio.ensure_future(self.payloads.wait(self.interval))
            gone = asyncio.ensure_future(self.gone.wait())
            try:
                await asyncio.wait({waiter, gone}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                gone.cancel()
                waiter.cancel()
            if self.gone.is_set():
                raise ClientGone
            if waiter.result() and (error := self.payloads.error()) is not None:
                raise error
        except BaseException:
            await self.aclose()
            raise

    async def aclose(self) -> None:
        """Stop the client watch and the upstream work; idempotent."""
        if self._closed:
            return
        self._closed = True
        with anyio.CancelScope(shield=True):
            if self._watch is not asyncio.current_task():
                if not self.gone.is_set():
                    self._watch.cancel()
                await asyncio.wait({self._watch})  # a watch that saw the client go closes first
            await self.payloads.aclose()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            if self.gone.is_set():
                return
            await send({"type": "http.response.start", "status": 200, "headers": list(SSE_HEADERS)})
            async for chunk in self._events():
                if self.gone.is_set():
                    return
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except OSError:
            return  # the client went away while we wrote (ASGI spec 2.4 servers raise this)
        finally:
            await self.aclose()

    async def _events(self) -> AsyncGenerator[bytes, None]:
        """SSE bytes: chunks encoded once, keep-alives in silences, errors as events, `[DONE]`;
        what has arrived together goes out in one write, and nothing waits for more."""
        payloads = self.payloads
        finished = False
        while not finished and not self.gone.is_set():
            if not await payloads.wait(self.interval):
                yield KEEPALIVE
                continue
            out = bytearray()
            while not finished and payloads.ready():
                try:
                    out += encode_event(payloads.take())
                except StopAsyncIteration:
                    finished = True
                except RagbridgeError as exc:
                    if not self.gone.is_set():
                        log.warning("stream failed after it was committed: %s", exc.message)
                    body = error_body(exc.message, exc.status, type=exc.type, code=exc.code)
                    out += encode_event(body)
                    finished = True
                except Exception:
                    log.exception("stream failed after it was committed")
                    out += encode_event(error_body("Internal server error.", 500))
                    finished = True
            yield bytes(out + DONE) if finished else bytes(out)


async def until_disconnect(receive: Receive, work: Awaitable[T]) -> T:
    """`work`'s result, or `ClientGone` (with `work` cancelled) if the client leaves first."""
    task = asyncio.ensure_future(work)
    watch = asyncio.ensure_future(_wait_for_disconnect(receive))
    try:
        await asyncio.wait({task, watch}, return_when=asyncio.FIRST_COMPLETED)
    except BaseException:
        task.cancel()
        raise
    finally:
        watch.cancel()
    if not task.done():
        task.cancel()
        with anyio.CancelScope(shield=True):
            await asyncio.wait({task})
        raise ClientGone
    return task.result()
