"""Token accounting for answers: time to first token, tokens by model and key, the key's budget.
Usage is the upstream's when it reports one, else the turn's prompt estimate and the answer counted
(a streamed content chunk is about one token)."""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, Mapping
from typing import Any

import anyio
from fastapi import Request

from ragbridge.api.deps import get_metrics, get_rate_limiter
from ragbridge.api.security import Principal
from ragbridge.chat import ChatTurn
from ragbridge.llm.chunks import Chunk
from ragbridge.text.tokens import estimate_tokens


async def record_usage(
    request: Request, *, model: str, prompt_tokens: int, completion_tokens: int
) -> None:
    """Count a finished answer's tokens: metrics, the log line, and the key's token budget
    (what the prompt estimate charged on arrival did not cover)."""
    principal: Principal = request.state.principal  # every route that answers requires one
    request.state.usage = (prompt_tokens, completion_tokens)
    get_metrics(request).add_tokens(model, principal.name, prompt_tokens, completion_tokens)
    if not principal.limits.unlimited:
        reserved: int = getattr(request.state, "reserved_tokens", 0)
        extra = max(0, prompt_tokens - reserved) + completion_tokens
        await get_rate_limiter(request).add_tokens(principal.name, extra)


def _reported(usage: Any) -> tuple[int, int] | None:
    if not isinstance(usage, Mapping):
        return None
    prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
    if isinstance(prompt, int) and isinstance(completion, int):
        return prompt, completion
    return None


async def record_completion(
    request: Request, turn: ChatTurn, completion: Mapping[str, Any]
) -> None:
    """Account for a non-streamed `chat.completion`."""
    usage = _reported(completion.get("usage"))
    if usage is None:
        text = "".join(
            str((choice.get("message") or {}).get("content") or "")
            for choice in completion.get("choices") or ()
            if isinstance(choice, Mapping)
        )
        usage = (turn.prompt_tokens, estimate_tokens(text))
    prompt, answer = usage
    await record_usage(request, model=turn.model, prompt_tokens=prompt, completion_tokens=answer)


def _has_content(chunk: Chunk) -> bool:
    choices = chunk.get("choices")
    if not isinstance(choices, list):
        return False
    return any(
        isinstance(c, Mapping) and isinstance(c.get("delta"), Mapping) and c["delta"].get("content")
        for c in choices
    )


async def metered(
    request: Request, turn: ChatTurn, chunks: AsyncGenerator[Chunk, None]
) -> AsyncGenerator[Chunk, None]:
    """Relay a stream's chunks unchanged, timing the first token and counting usage; closing
    this generator closes `chunks` (and so cancels the upstream request)."""
    started: float = getattr(request.state, "started_at", time.perf_counter())
    content_chunks = 0
    usage: tuple[int, int] | None = None
    try:
        async for chunk in chunks:
            usage = _reported(chunk.get("usage")) or usage
            if _has_content(chunk):
                if not content_chunks:
                    elapsed = time.perf_counter() - started
                    get_metrics(request).observe_ttft(turn.model, elapsed)
                content_chunks += 1
            yield chunk
    finally:
        with anyio.CancelScope(shield=True):
            await chunks.aclose()
            if usage is None and content_chunks:
                usage = (turn.prompt_tokens, content_chunks)
            if usage is not None:  # else nothing was generated (failed or gone before a token)
                await record_usage(
                    request, model=turn.model, prompt_tokens=usage[0], completion_tokens=usage[1]
                )
