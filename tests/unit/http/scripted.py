"""A scripted HTTP endpoint for `httpx.MockTransport`: each request gets the next reply."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

Answer = httpx.Response | Exception | Callable[[httpx.Request], httpx.Response]


class BreaksAfter(httpx.AsyncByteStream):
    """A body that sends `first`, then loses its connection."""

    def __init__(self, first: bytes) -> None:
        self.first = first

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield self.first
        raise httpx.ReadError("connection lost mid-body")


@dataclass
class Scripted:
    """Answers with `script` in order (an exception is raised as the transport's), then with
    `default(request)`; remembers every request and the seconds it was asked to sleep."""

    script: list[Answer] = field(default_factory=list)
    default: Callable[[httpx.Request], httpx.Response] = lambda _: httpx.Response(200, json={})
    requests: list[httpx.Request] = field(default_factory=list)
    sleeps: list[float] = field(default_factory=list)

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.script.pop(0) if self.script else self.default
        if isinstance(answer, Exception):
            raise answer
        return answer if isinstance(answer, httpx.Response) else answer(request)

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.MockTransport(self.handle))

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)

    def bodies(self) -> list[Any]:
        return [json.loads(request.content) for request in self.requests]


def error(status: int, message: str, **headers: str) -> httpx.Response:
    """An answer in OpenAI's error envelope."""
    return httpx.Response(status, json={"error": {"message": message}}, headers=headers)
