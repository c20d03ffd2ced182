"""Opt-in cache of finished temperature-0 completions (`RAGBRIDGE_RESPONSE_CACHE`).

A request asking for temperature 0 wants the same answer to the same prompt, so a repeat can be
served without calling the upstream. The key is everything the upstream reads: the body as sent
upstream (model, messages with any retrieved passages, tools, max_tokens, ...) except how the
answer is delivered (`stream`, `stream_options`). Streamed answers are cached too, rebuilt from
their chunks once the stream finished; a cached answer is replayed as a stream when one is asked
for (it is finished text, so nothing is being faked).
"""

from __future__ import annotations

import json
from typing import Any

from ragbridge.cache.base import Cache, cache_key
from ragbridge.service.telemetry import Metrics

CACHE_NAME = "response"
_DELIVERY_FIELDS = frozenset({"stream", "stream_options"})


def is_deterministic(body: dict[str, Any]) -> bool:
    """Whether the request asks for temperature 0 (a bool is not a temperature)."""
    temperature = body.get("temperature")
    if isinstance(temperature, bool) or not isinstance(temperature, int | float):
        return False
    return temperature == 0


class ResponseCache:
    """Completions by request, in the shared cache for `ttl` seconds."""

    def __init__(self, cache: Cache, ttl: float, metrics: Metrics | None = None) -> None:
        self._cache = cache
        self._ttl = ttl
        self._metrics = metrics

    def accepts(self, body: dict[str, Any]) -> bool:
        """Whether answers to this upstream request body may be cached (temperature 0)."""
        return is_deterministic(body)

    @staticmethod
    def key(body: dict[str, Any]) -> str:
        """The cache key of an upstream request body: all of it but how it is delivered."""
        fields = {name: value for name, value in body.items() if name not in _DELIVERY_FIELDS}
        return cache_key(CACHE_NAME, fields)

    async def get(self, body: dict[str, Any]) -> dict[str, Any] | None:
        """The cached `chat.completion` for `body`, or None; counted as a hit or a miss."""
        completion = _decode(await self._cache.get(self.key(body)))
        if self._metrics is not None:
            self._metrics.count_cache(CACHE_NAME, completion is not None)
        return completion

    async def put(self, body: dict[str, Any], completion: dict[str, Any]) -> None:
        """Remember a finished completion (one that has choices) for identical requests."""
        if completion.get("choices"):
            await self._cache.set(self.key(body), json.dumps(completion).encode(), self._ttl)


def _decode(data: bytes | None) -> dict[str, Any] | None:
    if not data:
        return None
    try:
        value = json.loads(data)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


class CompletionAssembler:
    """The `chat.completion` a stream of `chat.completion.chunk` payloads amounts to.

    Only plain text answers are rebuilt: a stream with tool calls, refusals or anything else
    in its deltas, or one that never said why it finished, yields None (and is not cached).
    """

    def __init__(self) -> None:
        self._head: dict[str, Any] = {}
        self._choices: dict[int, dict[str, Any]] = {}
        self._usage: Any = None
        self._plain = True

    def add(self, payload: str) -> None:
        """Take one `data` payload of the stream, in order."""
        try:
            chunk = json.loads(payload)
        except ValueError:
            self._plain = False
            return
        if not isinstance(chunk, dict):
            self._plain = False
            return
        if not self._head:
            self._head = {
                key: chunk[key]
                for key in ("id", "created", "model", "system_fingerprint")
                if key in chunk
            }
        if chunk.get("usage") is not None:
            self._usage = chunk["usage"]
        for choice in chunk.get("choices") or ():
            self._add_choice(choice)

    def _add_choice(self, choice: Any) -> None:
        if not isinstance(choice, dict) or not isinstance(choice.get("delta", {}), dict):
            self._plain = False
            return
        index = int(choice.get("index", 0))
        state = self._choices.setdefault(index, {"role": "assistant", "content": ""})
        for key, value in (choice.get("delta") or {}).items():
            if key == "role" and isinstance(value, str):
                state["role"] = value
            elif key == "content" and isinstance(value, str | None):
                state["content"] += value or ""
            elif value is not None:
                self._plain = False  # tool calls, refusals, ...: not rebuilt
        if choice.get("finish_reason"):
            state["finish_reason"] = choice["finish_reason"]

    def completion(self) -> dict[str, Any] | None:
        """The whole answer, or None when it cannot be rebuilt faithfully."""
        if not self._plain or not self._choices:
            return None
        if any("finish_reason" not in state for state in self._choices.values()):
            return None
        choices = [
            {
                "index": index,
                "message": {"role": state["role"], "content": state["content"]},
                "finish_reason": state["finish_reason"],
            }
            for index, state in sorted(self._choices.items())
        ]
        completion: dict[str, Any] = {**self._head, "object": "chat.completion", "choices": choices}
        if self._usage is not None:
            completion["usage"] = self._usage
        return completion
