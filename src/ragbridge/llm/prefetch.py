"""Read a stream ahead in a task of its own, so that a relay can wait for it with a timeout (and
send keep-alives) without cancelling it mid-step. The buffer always ends, whatever stops the
reading task, so a reader never waits for an end that cannot come."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Generic, TypeVar, cast

from ragbridge.errors import UpstreamError

T = TypeVar("T")

_Item = tuple[object, BaseException | None]


class StreamClosed(UpstreamError):
    """The read-ahead was stopped before its source ended (closed, or cancelled from outside)."""


class Prefetch(Generic[T]):
    """`source`'s items (then its end or its error), buffered up to `limit` ahead."""

    def __init__(self, source: AsyncGenerator[T, None], limit: int = 64) -> None:
        self._source = source
        self._limit = limit
        self._queue: asyncio.Queue[_Item] = asyncio.Queue()  # bounded by _run, not by the queue
        self._space = asyncio.Event()
        self._held: _Item | None = None
        self._ended = False
        self._closing = asyncio.Lock()
        self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        end: BaseException = StreamClosed("The answer stream was stopped.")
        try:
            async for item in self._source:
                self._queue.put_nowait((item, None))
                if self._queue.qsize() >= self._limit:
                    self._space.clear()
                    await self._space.wait()
            end = StopAsyncIteration()
        except Exception as exc:
            end = exc
        finally:  # also on cancellation and other BaseExceptions: the reader learns of the end
            self._finish(end)

    def _finish(self, end: BaseException) -> None:
        if not self._ended:
            self._ended = True
            self._queue.put_nowait((None, end))

    def ready(self) -> bool:
        """Whether the next item, the end or an error is there now."""
        if self._held is None and not self._queue.empty():
            self._held = self._queue.get_nowait()
            if self._queue.qsize() < self._limit:
                self._space.set()
        return self._held is not None

    async def wait(self, seconds: float) -> bool:
        """Whether the next item, the end or an error is there within `seconds`."""
        if not self.ready():
            try:
                async with asyncio.timeout(seconds):
                    self._held = await self._queue.get()
            except TimeoutError:
                return False
            self._space.set()
        return True

    def error(self) -> BaseException | None:
        """The error that comes next (once `ready`), if that is what comes."""
        if self._held is None or isinstance(self._held[1], StopAsyncIteration):
            return None
        return self._held[1]

    def take(self) -> T:
        """The next item (once `ready`); raises the error or StopAsyncIteration."""
        if self._held is None:
            raise RuntimeError("take() before the next item is ready")
        (item, error), self._held = self._held, None
        if error is not None:
            raise error
        return cast(T, item)

    async def aclose(self) -> None:
        """Stop reading and close the source (for a relay: cancel the upstream call); safe to
        call more than once, and before the reading task ever ran."""
        async with self._closing:
            self._task.cancel()
            await asyncio.wait({self._task})
            self._finish(StreamClosed("The answer stream was stopped."))
            await self._source.aclose()
