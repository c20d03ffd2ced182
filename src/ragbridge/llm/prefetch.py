"""Read a stream ahead in a task of its own, so its reader can wait with a timeout.

Waiting on an async generator directly with a timeout would cancel it mid-step; a relay that must
send keep-alives while the upstream is silent waits on this read-ahead buffer instead.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Generic, TypeVar, cast

T = TypeVar("T")


class Prefetch(Generic[T]):
    """`source`'s items (then its end or its error), buffered up to `limit` ahead."""

    def __init__(self, source: AsyncGenerator[T, None], limit: int = 64) -> None:
        self._source = source
        self._queue: asyncio.Queue[tuple[T | None, BaseException | None]] = asyncio.Queue(limit)
        self._held: tuple[T | None, BaseException | None] | None = None
        self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        try:
            async for item in self._source:
                await self._queue.put((item, None))
        except Exception as exc:
            await self._queue.put((None, exc))
        else:
            await self._queue.put((None, StopAsyncIteration()))

    def ready(self) -> bool:
        """Whether the next item, the end or an error is there now."""
        if self._held is None and not self._queue.empty():
            self._held = self._queue.get_nowait()
        return self._held is not None

    async def wait(self, seconds: float) -> bool:
        """Whether the next item, the end or an error is there within `seconds`."""
        if not self.ready():
            try:
                async with asyncio.timeout(seconds):
                    self._held = await self._queue.get()
            except TimeoutError:
                return False
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
        """Stop reading and close the source (which, for a relay, cancels the upstream call)."""
        self._task.cancel()
        await asyncio.wait({self._task})
        await self._source.aclose()
