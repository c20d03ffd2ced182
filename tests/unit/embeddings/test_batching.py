import asyncio
import threading

import numpy as np
import pytest

from ragbridge.embeddings.batching import Coalescer
from ragbridge.errors import ServiceUnavailable
from ragbridge.store.base import Vector


class LengthEncoder:
    """A tiny deterministic 'model' (text length and vowel count) that records its batches."""

    def __init__(self, delay: float = 0.0, fail: Exception | None = None) -> None:
        self.batches: list[list[str]] = []
        self.delay = delay
        self.fail = fail

    async def __call__(self, texts: list[str]) -> Vector:
        self.batches.append(list(texts))
        await asyncio.sleep(self.delay)
        if self.fail is not None:
            raise self.fail
        rows = [[len(t), sum(c in "aeiou" for c in t)] for t in texts]
        return np.asarray(rows, dtype=np.float32)


def test_concurrent_queries_share_one_batch() -> None:
    encoder = LengthEncoder(delay=0.01)

    async def main() -> list[Vector]:
        coalescer = Coalescer(encoder)
        try:
            return await asyncio.gather(*(coalescer.embed("q" * n) for n in range(1, 9)))
        finally:
            await coalescer.close()

    vectors = asyncio.run(main())
    assert [int(v[0]) for v in vectors] == list(range(1, 9))
    assert len(encoder.batches) == 1
    assert len(encoder.batches[0]) == 8


def test_queries_arriving_during_an_encode_form_the_next_batch() -> None:
    encoder = LengthEncoder(delay=0.05)

    async def main() -> None:
        coalescer = Coalescer(encoder)
        first = asyncio.create_task(coalescer.embed("first"))
        await asyncio.sleep(0.01)  # the first batch is now encoding
        later = [asyncio.create_task(coalescer.embed(f"later {i}")) for i in range(5)]
        await asyncio.gather(first, *later)
        await coalescer.close()

    asyncio.run(main())
    assert encoder.batches == [["first"], [f"later {i}" for i in range(5)]]


def test_batches_respect_max_batch_and_deduplicate() -> None:
    encoder = LengthEncoder()

    async def main() -> None:
        coalescer = Coalescer(encoder, max_batch=3)
        texts = ["a", "a", "bb", "ccc", "dddd"]
        vectors = await asyncio.gather(*(coalescer.embed(t) for t in texts))
        assert [int(v[0]) for v in vectors] == [1, 1, 2, 3, 4]
        await coalescer.close()

    asyncio.run(main())
    assert encoder.batches == [["a", "bb"], ["ccc", "dddd"]]


def test_cached_queries_skip_the_model_and_are_read_only() -> None:
    encoder = LengthEncoder()

    async def main() -> None:
        coalescer = Coalescer(encoder, cache_size=2)
        first = await coalescer.embed("apple")
        again = await coalescer.embed("apple")
        assert again is first
        with pytest.raises(ValueError):
            first[0] = 99.0
        await coalescer.embed("banana")
        await coalescer.embed("cherry")  # evicts "apple", the least recently used
        await coalescer.embed("apple")
        await coalescer.close()

    asyncio.run(main())
    assert encoder.batches == [["apple"], ["banana"], ["cherry"], ["apple"]]


def test_a_failed_encode_reaches_every_waiting_caller() -> None:
    encoder = LengthEncoder(fail=RuntimeError("model broke"))

    async def main() -> list[object]:
        coalescer = Coalescer(encoder)
        results = await asyncio.gather(
            coalescer.embed("x"), coalescer.embed("y"), return_exceptions=True
        )
        await coalescer.close()
        return results

    results = asyncio.run(main())
    assert all(isinstance(r, RuntimeError) and "model broke" in str(r) for r in results)


def test_close_fails_waiting_queries_with_503() -> None:
    encoder = LengthEncoder(delay=0.2)

    async def main() -> None:
        coalescer = Coalescer(encoder)
        pending = asyncio.create_task(coalescer.embed("slow"))
        await asyncio.sleep(0.02)
        await coalescer.close()
        with pytest.raises(ServiceUnavailable):
            await pending
        with pytest.raises(ServiceUnavailable):
            await coalescer.embed("after close")

    asyncio.run(main())


def test_works_across_event_loops() -> None:
    """The CLI runs `asyncio.run` more than once with one embedder; the batcher follows."""
    encoder = LengthEncoder()
    coalescer = Coalescer(encoder)
    first = asyncio.run(coalescer.embed("one"))
    second = asyncio.run(coalescer.embed("three"))
    assert (int(first[0]), int(second[0])) == (3, 5)
    outside = threading.Thread(target=lambda: asyncio.run(coalescer.embed("fourth!")))
    outside.start()
    outside.join()
    assert encoder.batches[-1] == ["fourth!"]
