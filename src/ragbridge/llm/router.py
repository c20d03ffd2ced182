"""`ModelRouter`: the local model and the HTTP upstream behind one `ChatBackend`, by model id.
The local model is listed first, so it is the default of `rag/<collection>` unless
`RAGBRIDGE_UPSTREAM_MODEL` names another; every other id goes to the HTTP upstream."""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any

from ragbridge.llm.backend import ChatBackend, StreamReply
from ragbridge.llm.local.model import LocalModel, not_this_model


class ModelRouter:
    """Sends each request to the local model or to the remote upstream, by its `model`."""

    def __init__(self, local: LocalModel, remote: ChatBackend | None) -> None:
        self.local = local
        self.remote = remote

    async def list_models(self) -> list[dict[str, Any]]:
        """The local model, then the remote upstream's (an unreachable upstream raises)."""
        models = await self.local.list_models()
        if self.remote is not None:
            models += [m for m in await self.remote.list_models() if m.get("id") != self.local.id]
        return models

    async def resolve_model(self, requested: str) -> str:
        """The local model's id as it is; any other id as the remote upstream resolves it."""
        return await self._backend(requested).resolve_model(requested)

    def context_window(self, model: str) -> int | None:
        """The local model's context window for its id; None (the setting) for the others."""
        return self.local.context_tokens if model == self.local.id else None

    async def complete(self, body: dict[str, Any], incoming: Mapping[str, str]) -> dict[str, Any]:
        return await self._backend(str(body.get("model"))).complete(body, incoming)

    def open_stream(
        self, body: dict[str, Any], incoming: Mapping[str, str]
    ) -> AbstractAsyncContextManager[StreamReply]:
        return self._backend(str(body.get("model"))).open_stream(body, incoming)

    def _backend(self, model: str) -> ChatBackend:
        if model == self.local.id:
            return self.local
        if self.remote is None:
            raise not_this_model(model, self.local.id)
        return self.remote
