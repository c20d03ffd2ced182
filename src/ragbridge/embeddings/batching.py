"""Concurrent embedding calls share one model call; recent query vectors are remembered."""

from __future__ import annotations

import asyncio
import hashlib
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from contextlib import suppress

from ragbridge.errors import ServiceUnavailable
from ragbridge.store.base import Vector

EncodeMany = Callable[[list[str]], Awaitable[Vector]]
_Pending = tuple[str, "asyncio.Future[Vector]"]
_CACHE_BYTES = 16 * 1024 * 1024
"""Memory for remembered query vectors (keys are 32-byte hashes, never the texts)."""
_KEY_BYTES = 32 + 150  # digest and dict/object overhead per entry


class Coalescer:
    """Batches concurrent `embed(text)` calls into one `encode_many` call; caches results (LRU,
    at most `cache_size` vectors and 16 MiB, keyed by a hash of the text).

    No time window is waited for: an idle model encodes a lone text at once, and the texts that
    arrive while it is busy form the next batch. Returned vectors are read-only and shared.
    """

    def __init__(
        self,
        encode_many: EncodeMany,
        *,
        max_batch: int = 64,
        cache_size: int = 1024,
    ) -> None:
        self._encode_many = encode_many
        self._max_batch = max(1, max_batch)
        self._cache_size = cache_size
        self._cache: OrderedDict[bytes, Vector] = OrderedDict()
        self._cached_bytes = 0
        self._queue: asyncio.Queue[_Pending] | None = None
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False

    async def embed(self, text: str) -> Vector:
        """The vector of one text."""
        key = _key(text)
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            return cached
        if self._closed:
            raise ServiceUnavailable("The embedding model is shut down.")
        queue = self._running_queue()
        future: asyncio.Future[Vector] = asyncio.get_running_loop().create_future()
        queue.put_nowait((text, future))
        return await future

    async def close(self) -> None:
        """Stop the batching task; texts still waiting fail with 503."""
        self._closed = True
        task, queue = self._task, self._queue
        self._task = self._queue = None
        if task is None or queue is None:
            return
        task.cancel()
        if task.get_loop() is asyncio.get_running_loop():
            with suppress(asyncio.CancelledError):
                await task
        while not queue.empty():
            _, future = queue.get_nowait()
            if not future.done():
                future.set_exception(ServiceUnavailable("The embedding model is shut down."))

    def _running_queue(self) -> asyncio.Queue[_Pending]:
        """The queue of this event loop's batching task, started on first use."""
        loop = asyncio.get_running_loop()
        if self._queue is None or self._task is None or self._task.done() or self._loop is not loop:
            self._loop = loop
            self._queue = asyncio.Queue()
            self._task = loop.create_task(self._run(self._queue), name="ragbridge-embed-batcher")
        return self._queue

    async def _run(self, queue: asyncio.Queue[_Pending]) -> None:
        while True:
            batch = [await queue.get()]
            await asyncio.sleep(0)  # callers woken in this same tick join the batch
            while len(batch) < self._max_batch and not queue.empty():
                batch.append(queue.get_nowait())
            await self._answer([item for item in batch if not item[1].done()])

    async def _answer(self, batch: list[_Pending]) -> None:
        if not batch:
            return
        texts = list(dict.fromkeys(text for text, _ in batch))
        try:
            vectors = await self._encode_many(texts)
        except BaseException as exc:
            error = exc if isinstance(exc, Exception) else ServiceUnavailable("Embedding stopped.")
            for _, future in batch:
                if not future.done():
                    future.set_exception(error)
            if not isinstance(exc, Exception):
                raise
            return
        by_text: dict[str, Vector] = {}
        for text, row in zip(texts, vectors, strict=True):
            row.flags.writeable = False
            by_text[text] = row
            self._remember(text, row)
        for text, future in batch:
            if not future.done():
                future.set_result(by_text[text])

    def _remember(self, text: str, vector: Vector) -> None:
        if self._cache_size <= 0:
            return
        key = _key(text)
        old = self._cache.pop(key, None)
        if old is not None:
            self._cached_bytes -= old.nbytes + _KEY_BYTES
        self._cache[key] = vector
        self._cached_bytes += vector.nbytes + _KEY_BYTES
        while self._cache and (
            len(self._cache) > self._cache_size or self._cached_bytes > _CACHE_BYTES
        ):
            _, dropped = self._cache.popitem(last=False)
            self._cached_bytes -= dropped.nbytes + _KEY_BYTES


def _key(text: str) -> bytes:
    """The cache key of a text: its hash (a text may be megabytes)."""
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=32).digest()
