"""The seam between chat and whatever answers: `UpstreamClient` (HTTP), `LocalModel` (GGUF
in-process) and `ModelRouter` (both, by model id) fit it; a stream is parsed `Chunk`s."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

from ragbridge.llm.chunks import Chunk


class StreamReply(Protocol):
    """An open answer: its chunks as they come, or (`completion`) the whole answer at once."""

    completion: dict[str, Any] | None

    def chunks(self) -> AsyncIterator[Chunk]: ...


class ChatBackend(Protocol):
    """Lists models and answers chat requests for them."""

    async def list_models(self) -> list[dict[str, Any]]: ...

    async def resolve_model(self, requested: str) -> str:
        """The id that serves `requested` (`llama3.2` -> `llama3.2:latest`); NotFound if none."""
        ...

    async def complete(
        self, body: dict[str, Any], incoming: Mapping[str, str]
    ) -> dict[str, Any]: ...

    def open_stream(
        self, body: dict[str, Any], incoming: Mapping[str, str]
    ) -> AbstractAsyncContextManager[StreamReply]: ...
