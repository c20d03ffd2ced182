"""Answers ragbridge writes itself (extractive, task JSON) in OpenAI's shapes.

Non-streamed: a `chat.completion` with estimated usage. Streamed: the chunks a model would send,
a role delta, the text a word at a time, the finish reason, then usage when asked for. The text is
finished before the first chunk, so the chunks go out at once; splitting by words keeps clients'
token counting (one content chunk ≈ one token) close to the estimate.
"""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

from ragbridge.text.tokens import estimate_tokens

_PIECE = re.compile(r"\s*\S+|\s+")


def finished_completion(model: str, text: str, prompt_tokens: int) -> dict[str, Any]:
    """A `chat.completion` whose answer is `text`."""
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
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def finished_chunks(completion: dict[str, Any], *, include_usage: bool) -> list[dict[str, Any]]:
    """`finished_completion`'s answer as `chat.completion.chunk`s, its text a word per chunk."""
    base = {
        "id": completion["id"],
        "object": "chat.completion.chunk",
        "created": completion["created"],
        "model": completion["model"],
    }
    text = str(completion["choices"][0]["message"]["content"])

    def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "finish_reason": finish_reason}
        return {**base, "choices": [choice]}

    chunks = [chunk({"role": "assistant", "content": ""})]
    chunks += [chunk({"content": piece}) for piece in _PIECE.findall(text)]
    chunks.append(chunk({}, "stop"))
    if include_usage:
        chunks.append({**base, "choices": [], "usage": completion["usage"]})
    return chunks
