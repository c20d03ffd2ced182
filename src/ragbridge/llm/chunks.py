"""Stream chunks as parsed dicts, and the one conversion each way between a finished
`chat.completion` and the `chat.completion.chunk`s a streaming model sends."""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

from ragbridge.text.tokens import estimate_tokens

Chunk = dict[str, Any]
"""One `chat.completion.chunk` (or an Open WebUI source event, or an error object), parsed."""

_WORD = re.compile(r"\s*\S+|\s+")


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    """OpenAI's `usage` object."""
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def choice_chunk(
    head: Chunk, delta: dict[str, Any], finish: str | None = None, index: int = 0
) -> Chunk:
    """A `chat.completion.chunk` with `head`'s id, created and model, for one choice."""
    return {**head, "choices": [{"index": index, "delta": delta, "finish_reason": finish}]}


def finished_completion(
    model: str,
    text: str,
    prompt_tokens: int,
    completion_tokens: int | None = None,
    finish_reason: str = "stop",
) -> dict[str, Any]:
    """A `chat.completion` for a whole answer: the local model's, or one ragbridge wrote itself
    (extractive, task JSON; its tokens estimated when not given)."""
    if completion_tokens is None:
        completion_tokens = estimate_tokens(text)
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": finish_reason,
            }
        ],
        "usage": usage(prompt_tokens, completion_tokens),
    }


def completion_chunks(
    completion: dict[str, Any], *, include_usage: bool, by_word: bool = False
) -> list[Chunk]:
    """A finished `chat.completion` as chunks: per choice a role delta, the content (`by_word`: a
    word per chunk, so that clients counting chunks as tokens come close to the estimate), any
    other message field (tool calls, ...), the finish reason; last, when asked for, the usage."""
    base: Chunk = {
        "id": completion.get("id") or f"chatcmpl-{time.time_ns()}",
        "object": "chat.completion.chunk",
        "created": completion.get("created") or int(time.time()),
        "model": completion.get("model", ""),
    }
    if fingerprint := completion.get("system_fingerprint"):
        base["system_fingerprint"] = fingerprint

    chunks: list[Chunk] = []
    for position, choice in enumerate(completion.get("choices") or []):
        index = choice.get("index", position)
        message = dict(choice.get("message") or {})
        role = message.pop("role", "assistant")
        if tool_calls := message.get("tool_calls"):
            message["tool_calls"] = [
                {"index": i, **call} for i, call in enumerate(tool_calls) if isinstance(call, dict)
            ]
        delta = {key: value for key, value in message.items() if value is not None}
        chunks.append(choice_chunk(base, {"role": role, "content": ""}, index=index))
        if by_word and isinstance(delta.get("content"), str):
            words = _WORD.findall(delta.pop("content"))
            chunks += [choice_chunk(base, {"content": word}, index=index) for word in words]
        if delta:
            chunks.append(choice_chunk(base, delta, index=index))
        chunks.append(choice_chunk(base, {}, choice.get("finish_reason") or "stop", index))
        if "logprobs" in choice:
            chunks[-1]["choices"][0]["logprobs"] = choice["logprobs"]
    if include_usage and completion.get("usage") is not None:
        chunks.append({**base, "choices": [], "usage": completion["usage"]})
    return chunks


class CompletionAssembler:
    """The `chat.completion` a stream of chunks amounts to (`completion_chunks` reversed); only
    plain text answers that say why they finished are rebuilt (others are not cached)."""

    def __init__(self) -> None:
        self._head: dict[str, Any] = {}
        self._choices: dict[int, dict[str, Any]] = {}
        self._usage: Any = None
        self._plain = True

    def add(self, chunk: Chunk) -> None:
        """Take one chunk of the stream, in order."""
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
        state = self._choices.setdefault(
            index,
            {
                "index": index,
                "message": {"role": "assistant", "content": ""},
                "finish_reason": None,
            },
        )
        message = state["message"]
        for key, value in (choice.get("delta") or {}).items():
            if key == "role" and isinstance(value, str):
                message["role"] = value
            elif key == "content" and isinstance(value, str | None):
                message["content"] += value or ""
            elif value is not None:
                self._plain = False  # tool calls, refusals, ...: not rebuilt
        if choice.get("finish_reason"):
            state["finish_reason"] = choice["finish_reason"]

    def completion(self) -> dict[str, Any] | None:
        """The whole answer, or None when it cannot be rebuilt faithfully."""
        choices = [state for _, state in sorted(self._choices.items())]
        if not self._plain or not choices or not all(c["finish_reason"] for c in choices):
            return None
        completion: dict[str, Any] = {**self._head, "object": "chat.completion", "choices": choices}
        if self._usage is not None:
            completion["usage"] = self._usage
        return completion
