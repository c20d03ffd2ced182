"""Upstream model ids: the cached `/models` list, a default, and a requested name matched the
way upstreams accept names (`llama3.2` for `llama3.2:latest`, `name` for `org/name`, any case)."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from ragbridge.errors import NotFound, RagbridgeError

log = logging.getLogger(__name__)

# Ids of models that cannot answer a chat: embeddings, images, audio, speech, moderation...
_NOT_CHAT = re.compile(
    r"embed|dall-e|gpt-image|image-|imagen|stable-diffusion|sdxl|flux|tts|whisper|audio|"
    r"transcribe|speech|moderation|rerank|realtime|sora|^babbage-002$|^davinci-002$|"
    r"(^|[/_-])(bge|e5|gte|minilm|mpnet|clip)([/_.:-]|$)",
    re.IGNORECASE,
)
_DEFAULT_TAG = ":latest"
_FAILED_LIST_TTL = 5.0  # after a failed model list fetch, chats skip the model check


def is_chat_model(model_id: str) -> bool:
    """Whether an upstream id names a model that can answer chats (judged by its name)."""
    return _NOT_CHAT.search(model_id) is None


def default_chat_model(listed: Sequence[str]) -> str | None:
    """The first listed model that can chat, or None."""
    return next((model for model in listed if is_chat_model(model)), None)


def match_model(requested: str, listed: Sequence[str]) -> str | None:
    """The listed id the upstream would serve for `requested`, or None when none matches."""
    if requested in listed:
        return requested
    wanted = requested.casefold()
    rules = (
        lambda listed_id: listed_id == wanted,
        lambda listed_id: ":" not in wanted and listed_id == wanted + _DEFAULT_TAG,
        lambda listed_id: _bare(listed_id) == _bare(wanted),
    )
    for rule in rules:
        found = [model for model in listed if rule(model.casefold())]
        if len(found) == 1:
            return found[0]
    return None


def _bare(model_id: str) -> str:
    """An id without its `org/` prefix and its `:latest` tag."""
    name = model_id.rsplit("/", 1)[-1]
    return name.removesuffix(_DEFAULT_TAG)


class ModelList:
    """An upstream's `/models` entries, fetched again once older than `ttl` seconds."""

    def __init__(
        self, fetch: Callable[[int | None], Awaitable[list[dict[str, Any]]]], ttl: float
    ) -> None:
        self._fetch = fetch  # called with how many retries the fetch may make (None: default)
        self._ttl = ttl
        self._models: list[dict[str, Any]] = []
        self._expire = 0.0  # expired: the first call fetches
        self._failed_until = 0.0
        self._lock = asyncio.Lock()

    async def get(self, retries: int | None = None) -> list[dict[str, Any]]:
        """The cached entries, or fresh ones when they expired; a failed fetch raises."""
        if time.monotonic() >= self._expire:
            async with self._lock:
                if time.monotonic() >= self._expire:
                    self._models = await self._fetch(retries)
                    self._expire = time.monotonic() + self._ttl
        return self._models

    async def resolve(self, requested: str) -> str:
        """The listed id that serves `requested` (`llama3.2` -> `llama3.2:latest`), or
        `requested` itself when the list cannot be had (the upstream decides). Raises NotFound
        naming the model when the upstream lists nothing that matches."""
        if time.monotonic() < self._failed_until:
            return requested
        try:
            models = await self.get(retries=0)
        except RagbridgeError as exc:
            log.warning("upstream model list unavailable, not checking model ids: %s", exc.message)
            self._failed_until = time.monotonic() + _FAILED_LIST_TTL
            return requested
        listed = [str(model["id"]) for model in models]
        if (found := match_model(requested, listed)) is not None:
            return found
        shown = ", ".join(listed[:10]) + (", ..." if len(listed) > 10 else "")
        raise NotFound(
            f"The model '{requested}' does not exist upstream (it lists: {shown or 'nothing'}).",
            param="model",
            code="model_not_found",
        )
