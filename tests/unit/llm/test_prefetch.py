"""Waiting on a stream with a timeout neither loses items nor cancels the stream."""

import asyncio
from collections.abc import AsyncGenerator

import pytest

from ragbridge.errors import UpstreamError
from ragbridge.llm.prefetch import Prefetch


def test_timeouts_do_not_cancel_the_source_or_lose_items() -> None:
    async def slow() -> AsyncGenerator[str, None]:
        for item in ("a", "b"):
            await asyncio.sleep(0.15)
            yield item

    async def scenario() -> list[str | None]:
        stream = Prefetch(slow())
        seen: list[str | None] = []
        while True:
            if not await stream.wait(0.05):
                seen.append(None)  # a keep-alive would go out here
                continue
            try:
                seen.append(stream.take())
            except StopAsyncIteration:
                return seen

    seen = asyncio.run(scenario())
    assert [item for item in seen if item is not None] == ["a", "b"]
    assert seen.count(None) >= 2


def test_an_error_is_seen_before_it_is_raised() -> None:
    async def failing() -> AsyncGenerator[str, None]:
        raise UpstreamError("upstream broke")
        yield "never"

    async def scenario() -> None:
        stream = Prefetch(failing())
        assert await stream.wait(1.0)
        assert isinstance(stream.error(), UpstreamError)
        with pytest.raises(UpstreamError, match="upstream broke"):
            stream.take()
        await stream.aclose()

    asyncio.run(scenario())


def test_aclose_stops_the_source_midway() -> None:
    closed = asyncio.Event()

    async def endless() -> AsyncGenerator[int, None]:
        try:
            n = 0
            while True:
                n += 1
                yield n
                await asyncio.sleep(0.01)
        finally:
            closed.set()

    async def scenario() -> None:
        stream = Prefetch(endless(), limit=2)
        assert await stream.wait(1.0) and stream.take() == 1
        await stream.aclose()
        assert closed.is_set()

    asyncio.run(scenario())


def test_a_reader_is_told_the_end_even_when_the_reading_task_is_cancelled() -> None:
    """Not only `Exception`: a cancellation from outside still ends the buffer."""

    async def endless() -> AsyncGenerator[str, None]:
        while True:
            await asyncio.sleep(0.01)
            yield "토큰"

    async def scenario() -> BaseException | None:
        stream = Prefetch(endless())
        assert await stream.wait(1.0)
        stream._task.cancel()  # what a loop shutting down would do
        while True:
            assert await stream.wait(1.0), "the reader waits for an end that never comes"
            if (error := stream.error()) is not None:
                await stream.aclose()
                return error
            stream.take()

    error = asyncio.run(scenario())
    assert isinstance(error, UpstreamError)


def test_aclose_before_the_task_ran_closes_a_never_started_source() -> None:
    started = []

    async def source() -> AsyncGenerator[str, None]:
        started.append(True)
        yield "x"

    async def scenario() -> bool:
        stream = Prefetch(source())
        await stream.aclose()  # no await point before: the task never ran
        await stream.aclose()  # idempotent
        return stream.ready() and isinstance(stream.error(), UpstreamError)

    assert asyncio.run(scenario())
    assert started == []


def test_reading_ahead_stops_at_the_limit() -> None:
    produced = []

    async def fast() -> AsyncGenerator[int, None]:
        for i in range(100):
            produced.append(i)
            yield i

    async def scenario() -> list[int]:
        stream = Prefetch(fast(), limit=5)
        await asyncio.sleep(0.05)
        ahead = len(produced)
        items = []
        while True:
            await stream.wait(1.0)
            try:
                items.append(stream.take())
            except StopAsyncIteration:
                break
        assert ahead <= 6
        return items

    assert asyncio.run(scenario()) == list(range(100))
