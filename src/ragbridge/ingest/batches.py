"""The chunks of many files embedded together: a folder of small files still fills the model's
batches (one file of two chunks alone would make a forward pass of two texts)."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from contextlib import suppress

from ragbridge.store.base import Vector

EmbedTexts = Callable[[list[str]], Awaitable[Vector]]
_Request = tuple[list[str], "asyncio.Future[Vector]"]


class ChunkBatcher:
    """Queues the texts of each file and embeds the queue in calls of up to `size` texts.

    Nothing waits for a batch to fill: what is queued when the model is free is embedded, and
    what the other files queue meanwhile makes the next call. Queuing waits while two calls'
    worth is already waiting, so files are not loaded and split far ahead of the model. A
    shared call that fails is retried file by file: one bad input fails only its own file.
    """

    def __init__(
        self, embed: EmbedTexts, size: int, on_embedded: Callable[[int], None] | None = None
    ) -> None:
        self._embed = embed
        self.size = max(1, size)
        self._on_embedded = on_embedded
        self._queue: deque[_Request] = deque()
        self._queued = 0
        self._room = asyncio.Condition()
        self._ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def submit(self, texts: list[str]) -> asyncio.Future[Vector]:
        """Queue `texts` (at most `size`) once there is room; the future gets their vectors."""
        async with self._room:
            await self._room.wait_for(lambda: self._queued < 2 * self.size)
            future: asyncio.Future[Vector] = asyncio.get_running_loop().create_future()
            self._queue.append((texts, future))
            self._queued += len(texts)
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="ragbridge-ingest-batches")
        self._ready.set()
        return future

    async def close(self) -> None:
        """Stop embedding; requests still queued are cancelled."""
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task
        for _, future in self._queue:
            future.cancel()

    async def _run(self) -> None:
        while True:
            await self._ready.wait()
            self._ready.clear()
            while self._queue:
                batch = [self._queue.popleft()]
                count = len(batch[0][0])
                while self._queue and count + len(self._queue[0][0]) <= self.size:
                    batch.append(self._queue.popleft())
                    count += len(batch[-1][0])
                async with self._room:
                    self._queued -= count
                    self._room.notify_all()
                await self._answer(batch)

    async def _answer(self, batch: list[_Request]) -> None:
        """Embed `batch` in one call; if that fails, each request alone."""
        try:
            vectors = await self._embed([text for texts, _ in batch for text in texts])
        except Exception as exc:
            if len(batch) > 1:
                for request in batch:
                    await self._answer([request])
            elif not batch[0][1].done():
                batch[0][1].set_exception(exc)
            return
        start = 0
        for texts, future in batch:
            if not future.done():
                future.set_result(vectors[start : start + len(texts)])
            start += len(texts)
        if self._on_embedded is not None:
            self._on_embedded(start)
