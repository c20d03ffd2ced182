"""Token accounting for answers: time to first token, tokens by model and key, the key's budget.

The chat route passes its answer through here: `record_completion` for a `chat.completion`,
`metered` around the payloads of a stream. Usage comes from the upstream's `usage` when it sends
one; otherwise prompt tokens are the estimate made on arrival and completion tokens are counted
from the answer (one streamed content chunk is about one token).
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncGenerator, Mapping
from typing import Any

import anyio
from fastapi import Request

from ragbridge.api.deps import get_metrics, get_rate_limiter
from ragbridge.service.api_keys import ANONYMOUS
from ragbridge.text.tokens import estimate_tokens


async def record_usage(
    request: Request, *, model: str, prompt_tokens: int, completion_tokens: int
) -> None:
    """Count a finished answer's tokens: metrics, the key's token budget, the log line.

    Tokens beyond the prompt estimate charged on arrival are charged to the key now.
    """
    principal = getattr(request.state, "principal", None)
    key = principal.name if principal is not None else ANONYMOUS
    request.state.usage = (prompt_tokens, completion_tokens)
    get_metrics(request).add_tokens(model, key, prompt_tokens, completion_tokens)
    if principal is not None and not principal.limits.unlimited:
        reserved: int = getattr(request.state, "reserved_tokens", 0)
        extra = max(0, prompt_tokens - reserved) + completion_tokens
        await get_rate_limiter(request).add_tokens(key, extra)


def _reported(usage: Any) -> tuple[int, int] | None:
    if not isinstance(usage, Mapping):
        return None
    prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
    if isinstance(prompt, int) and isinstance(completion, int):
        return prompt, completion
    return None


def _estimated_prompt(request: Request) -> int:
    return int(getattr(request.state, "prompt_estimate", 0))


async def record_completion(request: Request, model: str, completion: Mapping[str, Any]) -> None:
    """Account for a non-streamed `chat.completion`."""
    usage = _reported(completion.get("usage"))
    if usage is None:
        text = "".join(
            str((choice.get("message") or {}).get("content") or "")
            for choice in completion.get("choices") or ()
            if isinstance(choice, Mapping)
        )
        usage = (_estimated_prompt(request), estimate_tokens(text))
    await record_usage(request, model=model, prompt_tokens=usage[0], completion_tokens=usage[1])


def _has_content(chunk: Mapping[str, Any]) -> bool:
    choices = chunk.get("choices")
    if not isinstance(choices, list):
        return False
    return any(
        isinstance(c, Mapping) and isinstance(c.get("delta"), Mapping) and c["delta"].get("content")
        for c in choices
    )


async def metered(
    request: Request, model: str, payloads: AsyncGenerator[str, None]
) -> AsyncGenerator[str, None]:
    """Relay a stream's `data` payloads unchanged, timing the first token and counting usage.

    Closing this generator closes `payloads` (and so cancels the upstream request).
    """
    started: float = getattr(request.state, "started_at", time.perf_counter())
    first_token = False
    content_chunks = 0
    usage: tuple[int, int] | None = None
    try:
        async for payload in payloads:
            try:
                chunk = json.loads(payload)
            except ValueError:
                chunk = None
            if isinstance(chunk, Mapping):
                usage = _reported(chunk.get("usage")) or usage
                if _has_content(chunk):
                    content_chunks += 1
                    if not first_token:
                        first_token = True
                        elapsed = time.perf_counter() - started
                        get_metrics(request).observe_ttft(model, elapsed)
            yield payload
    finally:
        with anyio.CancelScope(shield=True):
            await payloads.aclose()
            if usage is None and content_chunks:
                usage = (_estimated_prompt(request), content_chunks)
            if usage is not None:  # else nothing was generated (failed or gone before a token)
                await record_usage(
                    request, model=model, prompt_tokens=usage[0], completion_tokens=usage[1]
                )
